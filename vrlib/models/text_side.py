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
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

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


# ----------------------------------------------------------------------------- the text tower


def text_tower(model: nn.Module) -> dict[str, Any]:
    """The public submodules of an open_clip text tower that the cached text sides need.

    Works for ``open_clip.CLIP`` (tower unpacked onto the model) and for a ``model.text``
    ``TextTransformer`` without a class token. Only CLIP's EOT pooling (``argmax``/``eos``) is
    supported: the text embedding is the output at the EOT token, which ``token_mask`` marks as
    the last valid position.

    Raises:
        NotImplementedError: another text tower (HF text models, class-token pooling).
    """
    tower = model if hasattr(model, "token_embedding") else getattr(model, "text", None)
    pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", None))
    if (
        tower is None
        or not hasattr(tower, "token_embedding")
        or getattr(tower, "cls_emb", None) is not None
        or pool not in ("argmax", "eos")
    ):
        raise NotImplementedError(
            f"{type(model).__name__}: cached text sides need an open_clip causal text transformer "
            f"pooled at the end-of-text token (got pool type {pool!r})"
        )
    return {
        "token_embedding": tower.token_embedding,
        "positional_embedding": tower.positional_embedding,
        "blocks": tower.transformer.resblocks,
        "batch_first": getattr(tower.transformer, "batch_first", True),
        "ln_final": tower.ln_final,
        "projection": tower.text_projection,
        "attn_mask": tower.attn_mask,
        "pool": pool,
        "eos_id": getattr(tower, "text_eos_id", getattr(tower, "eos_id", None)),
    }


def _project(x: Tensor, projection: nn.Module | Tensor | None) -> Tensor:
    """Apply a text projection stored as an ``nn.Linear``, a (W, D) matrix or nothing."""
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Module) else x @ projection


def _pool_and_project(
    x: Tensor, eot: Tensor, projection: nn.Module | Tensor | None
) -> tuple[Tensor, Tensor]:
    """(B, L, W) after ``ln_final`` -> text (B, D) and tokens (B, L, D).

    The text is pooled at EOT *before* projecting, as open_clip's ``encode_text`` does: the
    same matrix product on the same rows, so the result matches it bit for bit (projecting all
    tokens and then pooling rounds differently).
    """
    rows = torch.arange(x.shape[0], device=x.device)
    return _project(x[rows, eot], projection), _project(x, projection)


def _run_blocks(
    x: Tensor, blocks: Sequence[nn.Module], attn_mask: Tensor, batch_first: bool
) -> Tensor:
    """Residual blocks over (B, L, W) hidden states under the (L, L) causal mask."""
    if not batch_first:
        x = x.transpose(0, 1)  # (L, B, W)
    for block in blocks:
        x = block(x, attn_mask=attn_mask)
    return x if batch_first else x.transpose(0, 1)  # (B, L, W)


def eot_index(token_mask: Tensor) -> Tensor:
    """(B, L) prefix mask (True up to and including EOT) -> (B,) position of the EOT token.

    Raises ValueError when a row is empty or is not a prefix (then the last valid position is
    not the EOT token and the pooled feature would be wrong).
    """
    count = token_mask.sum(dim=1)  # (B,)
    prefix = torch.arange(token_mask.shape[1], device=token_mask.device)[None, :] < count[:, None]
    bad = ((count == 0) | (prefix != token_mask).any(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"token_mask rows {bad} are not a non-empty prefix (True up to and including the "
            "end-of-text token)"
        )
    return count - 1


@torch.no_grad()
def text_inputs(
    encoder: Any,
    captions: Sequence[str],
    hidden_block: int | None = None,
    batch_size: int = 256,
    trim: bool = False,
) -> dict[str, Tensor]:
    """Everything a cached text side may read, for a list of captions (computed once per split).

    Runs the encoder's text tower once, in its own precision, without gradients; returns float32.

    Args:
        encoder: a ``vrlib.encoders.ClipEncoder`` (its ``model``, ``tokenizer`` and ``device``).
        captions: the split's captions, in the order the training data indexes them.
        hidden_block: also return the hidden states at the input of this block (``L - N`` for
            ``last_blocks`` with N blocks: ``side.hidden_block``); None: not needed.
        batch_size: captions per tower call.
        trim: cut sequences to the longest caption (EOT included) instead of the context length.
            Saves memory and time (a step of ``last_blocks`` runs over fewer positions) and
            changes nothing but float rounding: with the causal mask the positions after EOT
            never reach the positions up to it, yet attention over a shorter row rounds
            differently (about 1e-7). Off: ``last_blocks`` reproduces the frozen text bit for bit.

    Returns:
        CPU tensors, row i for caption i, sequences of ``L'`` tokens (the context length, or the
        longest caption with ``trim``):
        ``"text"`` (C, D) L2-normalised embedding, ``"tokens"`` (C, L', D) per-token features
        after ``ln_final`` and the projection (not normalised), ``"token_mask"`` (C, L') bool,
        True up to and including EOT, and with ``hidden_block`` ``"hidden"`` (C, L', W).
    """
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError("captions must be a list of str")
    if not captions:
        raise ValueError("captions is empty: nothing to encode")
    tower = text_tower(encoder.model)
    depth = len(tower["blocks"])
    if hidden_block is not None and not 0 <= hidden_block < depth:
        raise ValueError(f"hidden_block must be in [0, {depth}) for this tower, got {hidden_block}")
    parts: list[dict[str, Tensor]] = []
    for start in range(0, len(captions), batch_size):
        ids = encoder.tokenizer(list(captions[start : start + batch_size])).to(encoder.device)
        parts.append(_tower_outputs(tower, ids, hidden_block))
    length = parts[0]["token_mask"].shape[1]
    if trim:
        length = max(int(p["token_mask"].sum(1).max()) for p in parts)  # longest caption + EOT
    out = {"text": torch.cat([p["text"] for p in parts])}  # (C, D)
    for key in parts[0].keys() - {"text"}:
        out[key] = torch.cat([p[key][:, :length] for p in parts])  # (C, L', ...)
    return out


def _tower_outputs(
    tower: dict[str, Any], ids: Tensor, hidden_block: int | None
) -> dict[str, Tensor]:
    """One batch of token ids (B, L) through the tower, keeping what ``text_inputs`` returns."""
    count = _prefix_length(ids, tower)
    mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < count[:, None]  # (B, L)
    dtype = next(tower["blocks"][0].parameters()).dtype  # the tower's own precision
    x = tower["token_embedding"](ids).to(dtype)  # (B, L, W)
    x = x + tower["positional_embedding"].to(dtype)
    attn_mask = tower["attn_mask"]
    out: dict[str, Tensor] = {}
    for i, block in enumerate(tower["blocks"]):
        if i == hidden_block:
            out["hidden"] = x.float().cpu()
        x = _run_blocks(x, [block], attn_mask, tower["batch_first"])
    text, tokens = _pool_and_project(tower["ln_final"](x), count - 1, tower["projection"])
    out["text"] = l2norm(text.float()).cpu()
    out["tokens"], out["token_mask"] = tokens.float().cpu(), mask.cpu()
    return out


def _prefix_length(ids: Tensor, tower: dict[str, Any]) -> Tensor:
    """(B,) tokens up to and including EOT, found as the tower's own pooling finds it."""
    if tower["pool"] == "eos":
        return (ids == tower["eos_id"]).int().argmax(dim=-1) + 1
    return ids.argmax(dim=-1) + 1  # CLIP's EOT has the largest id in the vocabulary


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
        x = _run_blocks(
            hidden.float(), self.blocks, self.attn_mask[:length, :length], self.batch_first
        )
        text, tokens = _pool_and_project(self.ln_final(x), eot, self.projection)
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
