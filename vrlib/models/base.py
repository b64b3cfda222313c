"""The one interface every temporal head shares, and the pieces heads are built from.

A temporal head turns per-frame CLIP features into a video embedding that is compared with a
caption embedding. Every head, from parameter-free mean pooling to TDB+TAB, answers the same five
calls, so the training engine, evaluation and the tests never branch on the head's name:

- ``encode_video(frames (B,T,D), mask (B,T)) -> (B,D)``: L2-normalised global video embedding;
- ``video_side(frames, mask, frames_2x=None, mask_2x=None) -> dict`` of batch-first tensors,
  always with ``"video"`` (B,D);
- ``text_side(text (B,D), tokens=None, token_mask=None) -> dict`` of batch-first tensors, always
  with ``"text"`` (B,D) L2-normalised;
- ``similarity_parts(text_side, video_side) -> dict[str, (Bt,Bv)]`` and ``part_weights() ->
  dict[str, float]``; ``similarity`` is their weighted sum (cosine based, no temperature).

How the engine should train any head (this reproduces CLIP2Video's
``L = w * L_global + (1 - w) * L_aligned`` for TAB heads and plain InfoNCE for the others)::

    parts = head.similarity_parts(text_side, video_side)
    loss = sum(weight * info_nce(parts[name]) for name, weight in head.part_weights().items())

Sides are dicts of pooled (B, ...) tensors only, never padded token tensors, so the engine can
gather them across ranks and evaluation can compute them chunk by chunk.

Shared building blocks live here: masked mean, L2 normalisation, input checks, and a small
pre-LayerNorm transformer (``TemporalTransformer``) used for CLIP4Clip's seqTransf, CLIP2Video's
temporal transformer, TDB's difference attention and TAB's 1-layer transformer.

Initialisation choice (the papers initialise these layers from CLIP's text transformer, which
we do not have for small heads): weights are drawn so that each residual branch adds a vector of
norm about ``BRANCH_INIT`` to a unit-norm frame feature, and position/type embeddings have
std ``EMBED_INIT_STD``. With L2-normalised inputs (what ``vrlib.encoders`` produces) a fresh
transformer head therefore starts close to mean pooling, as CLIP4Clip's residual design
intends, yet it is not exactly mean pooling, so frame order already matters at step 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BRANCH_INIT = 0.05  # approximate norm each residual branch adds to a unit-norm token at init
EMBED_INIT_STD = 0.01  # std of learned position and type embeddings at init


def l2norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """L2-normalise the last dimension (eps keeps an all-zero vector finite instead of NaN)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of the valid rows of each sequence.

    Args:
        x: (B, N, D) values; padded rows may hold anything finite or not.
        mask: (B, N) bool, True where the row is valid.

    Returns:
        (B, D). Padded rows are selected away with ``torch.where`` (not multiplied by 0), so
        even NaN in padding cannot leak into the result.
    """
    keep = mask.unsqueeze(-1)  # (B, N, 1)
    total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=1)
    count = keep.sum(dim=1).clamp_min(1).to(x.dtype)  # (B, 1)
    return total / count


def check_sequence(x: Tensor, mask: Tensor, dim: int, what: str) -> tuple[Tensor, Tensor]:
    """Validate a padded (B, N, D) sequence and its (B, N) mask.

    Returns ``x`` with padded rows set to 0 and the mask as bool. Zeroing matters: attention
    multiplies padded values by a weight of exactly 0, and 0 * NaN (or inf) is still NaN, so
    garbage in padding would otherwise leak into valid outputs.

    Raises ValueError naming ``what`` when shapes disagree, the feature size is not ``dim``, or
    a row has no valid element (its embedding would be undefined).
    """
    if x.dim() != 3:
        raise ValueError(f"{what}: expected a (B, N, D) tensor, got shape {tuple(x.shape)}")
    if x.shape[-1] != dim:
        raise ValueError(f"{what}: feature size {x.shape[-1]} does not match the head's dim={dim}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"{what}: mask shape {tuple(mask.shape)} does not match (B, N) = {tuple(x.shape[:2])}"
        )
    mask = mask.to(device=x.device, dtype=torch.bool)
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{what}: rows {empty} have no valid element (mask all False)")
    return torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device)), mask


def check_vectors(x: Tensor, dim: int, what: str) -> None:
    """Validate a (B, D) batch of vectors."""
    if x.dim() != 2 or x.shape[-1] != dim:
        raise ValueError(f"{what}: expected shape (B, {dim}), got {tuple(x.shape)}")


def learned_embedding(num: int, dim: int) -> nn.Parameter:
    """A (num, dim) table of learned embeddings, small at init (see module docstring)."""
    return nn.Parameter(torch.randn(num, dim) * EMBED_INIT_STD)


def positions(table: nn.Parameter, n: int, what: str) -> Tensor:
    """First ``n`` rows of a position table, (n, D); a clear error when the video is too long."""
    if n > table.shape[0]:
        raise ValueError(
            f"{what}: {n} positions but the head has {table.shape[0]} position embeddings; "
            f"build it with a larger num_frames"
        )
    return table[:n]


class TransformerBlock(nn.Module):
    """Pre-LayerNorm self-attention + MLP block with masked (padded) keys.

    Why our own block: the mask handling is explicit (padded tokens are never attended to; a
    query whose keys are all padded attends to everything instead, so its output stays finite
    and is masked away later), and the init is the small-branch init from the module docstring.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide dim={dim}")
        self.heads = heads
        self.ln_1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp_in = nn.Linear(dim, 4 * dim)
        self.mlp_out = nn.Linear(4 * dim, dim)
        self._init(dim)

    def _init(self, dim: int) -> None:
        # Inside the branch (after LayerNorm) activations are O(1) per element.
        for lin in (self.qkv, self.mlp_in):
            nn.init.normal_(lin.weight, std=dim**-0.5)
            nn.init.zeros_(lin.bias)
        # The last projection of each branch: output norm about BRANCH_INIT.
        nn.init.normal_(self.attn_out.weight, std=BRANCH_INIT / dim)
        nn.init.normal_(self.mlp_out.weight, std=BRANCH_INIT / dim)
        nn.init.zeros_(self.attn_out.bias)
        nn.init.zeros_(self.mlp_out.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, N, D); mask: (B, N) bool, True = real token. Returns (B, N, D)."""
        x = x + self._attend(self.ln_1(x), mask)
        return x + self.mlp_out(F.gelu(self.mlp_in(self.ln_2(x))))

    def _attend(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, N, Dh)
        keys = mask | ~mask.any(dim=1, keepdim=True)  # rows with no valid key attend to all
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :])
        return self.attn_out(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class TemporalTransformer(nn.Module):
    """A stack of ``TransformerBlock``s over a (B, N, D) token sequence with a (B, N) mask."""

    def __init__(self, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if x.shape[1] == 0:  # nothing to attend over (e.g. differences of a 1-frame video)
            return x
        for block in self.blocks:
            x = block(x, mask)
        return x


def default_heads(dim: int) -> int:
    """CLIP's rule (width / 64 heads), at least 1, for small test dims."""
    return max(1, dim // 64)


@dataclasses.dataclass
class HeadConfig:
    """Fields every head has. Subclasses add their own; unknown keys are rejected by
    ``make_config``, and ``__post_init__`` checks values so a bad parameter file fails early."""

    dim: int = 512
    num_frames: int = 12

    def __post_init__(self) -> None:
        check_positive_int("dim", self.dim)
        check_positive_int("num_frames", self.num_frames)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class TemporalHead(nn.Module):
    """Base class of every temporal head (see the module docstring for the contract).

    Subclasses implement ``encode_video``; heads with extra similarity terms (TAB) override
    ``video_side``, ``text_side``, ``similarity_parts`` and ``part_weights``.

    Attributes:
        needs_tokens: True when ``text_side`` requires per-word ``tokens``/``token_mask``.
        needs_double_rate: True when ``video_side`` requires ``frames_2x``/``mask_2x`` (may be
            set per instance: it depends on the config of TAB heads).
        name: the registry name the head was built under (empty if built directly).
        config: the resolved config dataclass (``dataclasses.asdict`` it to save next to runs).
    """

    needs_tokens: ClassVar[bool] = False
    needs_double_rate: bool = False
    name: str = ""  # the registry name, set by build_model

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.num_frames = config.num_frames

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        """(B, T, D) frame features + (B, T) bool mask -> (B, D) L2-normalised video embedding."""
        raise NotImplementedError

    def video_side(
        self,
        frames: Tensor,
        mask: Tensor,
        frames_2x: Tensor | None = None,
        mask_2x: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Everything the similarity needs from a batch of videos (batch-first tensors)."""
        return {"video": self.encode_video(frames, mask)}

    def text_side(
        self, text: Tensor, tokens: Tensor | None = None, token_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Everything the similarity needs from a batch of captions; tokens unused by default."""
        check_vectors(text, self.dim, "text")
        return {"text": l2norm(text)}

    def similarity_parts(
        self, text_side: dict[str, Tensor], video_side: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each cosine-similarity term, (Bt, Bv); keys match ``part_weights``."""
        return {"global": text_side["text"] @ video_side["video"].T}  # (Bt, Bv)

    def part_weights(self) -> dict[str, float]:
        """Weight of each similarity term, in the similarity and in the training loss."""
        return {"global": 1.0}

    def similarity(self, text_side: dict[str, Tensor], video_side: dict[str, Tensor]) -> Tensor:
        """(Bt, Bv) weighted sum of the cosine terms; no temperature (the loss owns it)."""
        parts = self.similarity_parts(text_side, video_side)
        weights = self.part_weights()
        return sum(weights[name] * parts[name] for name in weights)  # type: ignore[return-value]

    def extra_repr(self) -> str:
        fields = dataclasses.asdict(self.config)
        return ", ".join(f"{k}={v!r}" for k, v in fields.items())
