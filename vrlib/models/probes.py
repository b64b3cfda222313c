"""Probe heads: the simplest order-aware head, to find where an order signal is lost.

``early-late`` pools the first and the second half of a video's valid frames separately and adds
a learned linear map of the two means to the mean-pooled embedding. It knows only "what comes
first, what comes last", which is exactly what tells a video from its reversed twin. If this head
cannot separate twins on the training split, the signal is missing before any temporal head (in
the frame or text features); if it can and the deep heads cannot, the deep heads lose it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import BRANCH_INIT, HeadConfig, TemporalHead, check_sequence, l2norm, masked_mean
from .clip4clip import pool_frames
from .registry import MODELS, make_config


def half_masks(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T) masks of the first ``floor(n / 2)`` and the remaining valid frames of each video.

    Valid frames are the first ``n`` positions (the padding convention of every head); a video
    with one frame has an empty first half.
    """
    n = mask.sum(dim=1, keepdim=True)  # (B, 1)
    pos = torch.arange(mask.shape[1], device=mask.device)[None, :]  # (1, T)
    early = mask & (pos < n // 2)
    return early, mask & ~early


class EarlyLate(TemporalHead):
    """Mean pooling plus a learned map of the (early half mean, late half mean) pair."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        self.proj = nn.Linear(2 * config.dim, config.dim)
        nn.init.normal_(self.proj.weight, std=BRANCH_INIT / (2 * config.dim) ** 0.5)
        nn.init.zeros_(self.proj.bias)

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        early, late = half_masks(mask)
        unit = l2norm(frames)
        halves = torch.cat([masked_mean(unit, early), masked_mean(unit, late)], dim=-1)  # (B, 2D)
        return l2norm(pool_frames(frames, mask) + self.proj(halves))


@MODELS.register("early-late")
def early_late(**cfg: Any) -> EarlyLate:
    return EarlyLate(make_config(HeadConfig, cfg))
