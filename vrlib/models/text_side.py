"""The caption side of training on cached inputs: frozen, an adapter, or the last blocks of the text tower.

Frames stay cached while the text side learns, so a training step never runs an image tower.
Every text side is an ``nn.Module`` with one call,
``forward(text_inputs: dict[str, Tensor]) -> dict[str, Tensor]``, whose output is exactly the
keyword arguments of ``TemporalHead.text_side``: ``"text"`` (B, D) L2-normalised and, when the
inputs hold them, ``"tokens"`` (B, L, D) + ``"token_mask"`` (B, L) for heads with
``needs_tokens`` (TAB). So the engine runs ``head.text_side(**side(inputs))`` for any head and
any text side, and TAB's word tokens come from the trained side.

Registered text sides (``TEXT_SIDES``, built by ``build_text_side``):

- ``frozen``: today's behaviour, the cached text embedding (and cached word tokens), nothing
  trains.
- ``adapter``: a small transformer over the cached word-token features; its output at the
  end-of-text (EOT) token, through a zero-initialised linear map, is added to the frozen text
  embedding (scaled by its norm), then re-normalised. Word tokens get the same residual at
  their own positions. At init the output equals ``frozen`` exactly.
- ``last_blocks``: deep copies of the last ``blocks`` residual blocks of the encoder's text
  tower, its final LayerNorm and its text projection, trained. They run on cached hidden
  states at the input of block ``L - blocks`` under the tower's causal mask, so a step costs
  only the trainable blocks. At init the output equals the frozen embedding exactly.

What to cache per split: ``text_inputs(encoder, captions, hidden_block=side.hidden_block)``
returns every tensor a side may read; ``side.input_keys`` names the ones it does read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vrlib.encoders.tower_inputs import (
    eot_index,
    pool_and_project,
    run_blocks,
    text_tower,
)
from vrlib.registry import Registry

from .base import (
    TemporalTransformer,
    check_positive_int,
    check_sequence,
    check_vectors,
    default_heads,
    l2norm,
)

TEXT_SIDES: Registry[Callable[..., TextSide]] = Registry("text side")


# ----------------------------------------------------------------------------- text sides


class TextSide(nn.Module):
    """Base class: cached caption inputs -> the keyword arguments of ``TemporalHead.text_side``.

    Attributes:
        input_keys: the ``text_inputs`` keys ``forward`` reads (what the engine must cache and
            pass). ``tokens``/``token_mask`` are passed through when present even where not read.
        hidden_block: the tower block whose input hidden states must be cached, or None.
        name: the registry name (set by ``build_text_side``).
    """

    input_keys: ClassVar[tuple[str, ...]] = ("text",)
    hidden_block: int | None = None
    name: str = ""

    def forward(self, text_inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def _check(self, text_inputs: dict[str, Tensor]) -> None:
        missing = [k for k in self.input_keys if k not in text_inputs]
        if missing:
            raise KeyError(
                f"text side {self.name or type(self).__name__!r} needs cached inputs {missing}; "
                f"got {sorted(text_inputs)} (compute them with text_inputs(...))"
            )


class FrozenText(TextSide):
    """The cached embedding as it is: nothing trains (today's cached mode)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, text_inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self._check(text_inputs)
        check_vectors(text_inputs["text"], self.dim, "text")
        out = {"text": l2norm(text_inputs["text"])}
        if "tokens" in text_inputs:
            out["tokens"], out["token_mask"] = text_inputs["tokens"], text_inputs["token_mask"]
        return out


class TextAdapter(TextSide):
    """A small transformer over the cached word tokens, added to the frozen embedding at EOT.

    ``text = l2norm(t + |t| * W h_eot)`` and ``tokens_i = x_i + |x_i| * W h_i``, where ``h`` is
    the transformer's output over the L2-normalised tokens and ``W`` a linear map initialised
    with std ``init_scale`` (0: exactly zero, the default, so the adapter starts as ``frozen``).
    Why scale by the norm: the residual is then relative, the same whatever the feature scale
    of the cached tower. No position embedding: each token of a causal tower already encodes
    its prefix.
    """

    input_keys = ("text", "tokens", "token_mask")

    def __init__(self, dim: int, layers: int, heads: int, init_scale: float) -> None:
        super().__init__()
        self.dim = dim
        self.transformer = TemporalTransformer(dim, layers, heads)
        self.out = nn.Linear(dim, dim)
        if init_scale:
            nn.init.normal_(self.out.weight, std=init_scale)
        else:
            nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, text_inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self._check(text_inputs)
        text = text_inputs["text"]
        check_vectors(text, self.dim, "text")
        tokens, mask = check_sequence(
            text_inputs["tokens"], text_inputs["token_mask"], self.dim, "tokens"
        )
        eot = eot_index(mask)
        delta = self.out(self.transformer(l2norm(tokens), mask))  # (B, L, D)
        rows = torch.arange(len(text), device=text.device)
        text = text + text.norm(dim=-1, keepdim=True) * delta[rows, eot]  # (B, D)
        tokens = tokens + tokens.norm(dim=-1, keepdim=True) * delta
        return {"text": l2norm(text), "tokens": tokens, "token_mask": mask}


class LastBlocks(TextSide):
    """The last ``blocks`` blocks of the text tower, its final LayerNorm and projection, trained.

    Copies (``copy.deepcopy``) of the encoder's modules, so the encoder itself never changes and
    the output at init is the frozen embedding bit for bit (same modules, same inputs).
    """

    input_keys = ("hidden", "token_mask")

    def __init__(self, encoder: Any, blocks: int) -> None:
        super().__init__()
        tower = text_tower(encoder.model)
        depth = len(tower["blocks"])
        if not 1 <= blocks <= depth:
            raise ValueError(f"blocks must be in [1, {depth}] for this text tower, got {blocks}")
        self.hidden_block = depth - blocks
        self.blocks = copy.deepcopy(tower["blocks"][self.hidden_block :]).float()
        self.ln_final = copy.deepcopy(tower["ln_final"]).float()
        projection = copy.deepcopy(tower["projection"])
        if isinstance(projection, nn.Module):
            self.projection = projection.float()
        else:
            self.projection = nn.Parameter(projection.detach().float())
        self.batch_first = tower["batch_first"]
        self.register_buffer(
            "attn_mask", tower["attn_mask"].detach().float().clone(), persistent=False
        )
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, text_inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self._check(text_inputs)
        hidden, mask = text_inputs["hidden"], text_inputs["token_mask"].bool()
        if hidden.ndim != 3 or tuple(mask.shape) != tuple(hidden.shape[:2]):
            raise ValueError(
                f"hidden {tuple(hidden.shape)} and token_mask {tuple(mask.shape)} must be (B, L, W), (B, L)"
            )
        length = hidden.shape[1]
        eot = eot_index(mask)
        x = run_blocks(
            hidden.float(), self.blocks, self.attn_mask[:length, :length], self.batch_first
        )
        text, tokens = pool_and_project(self.ln_final(x), eot, self.projection)
        return {"text": l2norm(text), "tokens": tokens, "token_mask": mask}


# ----------------------------------------------------------------------------- registry


@TEXT_SIDES.register("frozen")
def frozen(encoder: Any = None, dim: int = 512) -> FrozenText:
    return FrozenText(dim)


@TEXT_SIDES.register("adapter")
def adapter(
    encoder: Any = None,
    dim: int = 512,
    layers: int = 1,
    heads: int | None = None,
    init_scale: float = 0.0,
) -> TextAdapter:
    check_positive_int("layers", layers)
    heads = default_heads(dim) if heads is None else heads
    check_positive_int("heads", heads)
    if not isinstance(init_scale, int | float) or isinstance(init_scale, bool) or init_scale < 0:
        raise ValueError(f"init_scale must be a number >= 0, got {init_scale!r}")
    return TextAdapter(dim, layers, heads, float(init_scale))


@TEXT_SIDES.register("last_blocks")
def last_blocks(encoder: Any = None, dim: int = 512, blocks: int = 1) -> LastBlocks:
    if encoder is None:
        raise ValueError("last_blocks copies the encoder's text blocks: pass encoder=ClipEncoder")
    check_positive_int("blocks", blocks)
    side = LastBlocks(encoder, blocks)
    if side.projection is not None:
        out_dim = (
            side.projection.out_features
            if isinstance(side.projection, nn.Linear)
            else side.projection.shape[-1]
        )
        if out_dim != dim:
            raise ValueError(f"dim={dim} does not match the text tower's output size {out_dim}")
    return side


def build_text_side(name: str, encoder: Any = None, dim: int = 512, **cfg: Any) -> TextSide:
    """Build the text side registered as ``name`` (``frozen``, ``adapter``, ``last_blocks``).

    Args:
        name: one of ``TEXT_SIDES.names()``.
        encoder: the ``ClipEncoder`` whose cached inputs the side reads (needed by
            ``last_blocks``, which copies its blocks; ignored by the others).
        dim: joint embedding size D (the heads' ``dim``).
        **cfg: side options; None values are dropped (the side's default applies):
            ``adapter``: ``layers=1``, ``heads=None`` (D // 64), ``init_scale=0.0``;
            ``last_blocks``: ``blocks=1``.

    Raises:
        KeyError: unknown name (lists the valid ones).
        TypeError: an option the side does not take (names it).
        ValueError: a bad option value.
    """
    builder = TEXT_SIDES.get(name)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    try:
        side = builder(encoder=encoder, dim=dim, **cfg)
    except TypeError as err:
        raise TypeError(f"build_text_side({name!r}): {err}") from err
    side.name = name
    return side
