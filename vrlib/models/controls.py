"""Order-blind controls: any temporal head, made blind to frame order by construction.

Why: a trained order-aware head (seqTransf, TDB, TAB) can beat parameter-free mean pooling for
two reasons, a learned projection or the order of frames. To tell them apart, a study trains the
same head with the same parts on frames it cannot order: :class:`CanonicalOrder` sorts each
video's valid frames by their projection on a fixed random direction before the head sees them.
Any permutation of a video's frames (its reversed twin, say) then reaches the head as the same
sequence, so the control is order-invariant exactly, not approximately, while keeping every
parameter (position embeddings included) and every trick (differences, alignment) of the head.

A shuffled-per-epoch control would only be order-invariant in expectation; sorting is cheaper
and exact, which is what makes "twins tie" a property of the control rather than a measurement.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import TemporalHead, check_sequence

CANONICAL_SEED = 20210616  # fixed: the direction must not depend on a run's seed


def canonical_direction(dim: int, seed: int = CANONICAL_SEED) -> Tensor:
    """(D,) unit vector drawn once from ``seed``: the key by which frames are sorted."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=gen, dtype=torch.float64)
    return (v / v.norm()).float()


def canonical_order(frames: Tensor, mask: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """Frames sorted by their projection on ``direction``, valid frames first.

    Args:
        frames: (B, T, D) frame features.
        mask: (B, T) bool, True for valid frames.
        direction: (D,) sorting key.

    Returns:
        ``(frames, mask)`` reordered per video: valid frames by increasing projection, then the
        padding. The result depends only on the multiset of each video's valid frames.
    """
    key = frames.float() @ direction.to(frames.device)  # (B, T)
    key = key.masked_fill(~mask, float("inf"))
    order = key.argsort(dim=1, stable=True)  # (B, T)
    frames = frames.gather(1, order[..., None].expand_as(frames))  # (B, T, D)
    return frames, mask.gather(1, order)


class CanonicalOrder(TemporalHead):
    """``inner`` with its frames (and double-rate frames) put in canonical content order.

    Every call of the head contract is forwarded to ``inner``; only the order of the frames it
    receives changes. Parameters live in ``inner`` (state-dict keys ``inner.*``).
    """

    def __init__(self, inner: TemporalHead) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.needs_tokens = inner.needs_tokens  # type: ignore[misc]
        self.needs_double_rate = inner.needs_double_rate
        self.name = f"{inner.name}:canonical" if inner.name else "canonical"
        self.register_buffer("direction", canonical_direction(inner.dim), persistent=False)

    def _sorted(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        return canonical_order(frames, mask, self.direction)

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        return self.inner.encode_video(*self._sorted(frames, mask))

    def video_side(
        self,
        frames: Tensor,
        mask: Tensor,
        frames_2x: Tensor | None = None,
        mask_2x: Tensor | None = None,
    ) -> dict[str, Tensor]:
        frames, mask = self._sorted(frames, mask)
        if frames_2x is not None:
            if mask_2x is None:
                mask_2x = torch.ones(frames_2x.shape[:2], dtype=torch.bool, device=frames.device)
            frames_2x, mask_2x = self._sorted(frames_2x, mask_2x)
        return self.inner.video_side(frames, mask, frames_2x, mask_2x)

    def text_side(
        self, text: Tensor, tokens: Tensor | None = None, token_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self.inner.text_side(text, tokens, token_mask)

    def similarity_parts(
        self, text_side: dict[str, Tensor], video_side: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        return self.inner.similarity_parts(text_side, video_side)

    def part_weights(self) -> dict[str, float]:
        return self.inner.part_weights()


def order_blind(head: TemporalHead) -> CanonicalOrder:
    """The order-blind control of ``head``: the same parts, frames in canonical order."""
    if isinstance(head, CanonicalOrder):
        raise ValueError(f"{head.name!r} is already an order-blind control")
    return CanonicalOrder(head)
