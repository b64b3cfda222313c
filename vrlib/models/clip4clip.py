"""CLIP4Clip's two parameter-light similarity heads (Luo et al. 2021): ``meanP`` and ``seqTransf``.

- ``meanP``: L2-normalise each frame feature, average the valid frames, L2-normalise again.
  It has no parameters at all: the engine must accept a head with an empty parameter list
  (evaluate it zero-shot, or train only the loss's logit scale / the encoders).
  It is invariant to the order of frames by construction.
- ``seqTransf``: add a learned frame position embedding, run an ``layers``-layer transformer
  over the frames (4 layers, CLIP4Clip's ``cross_num_hidden_layers`` default), add the input
  back (residual), then the same normalise / masked mean / normalise as ``meanP``.
  CLIP4Clip initialises this transformer from CLIP's text transformer; we cannot (no weights
  for arbitrary D), so we use the small-branch init from ``base`` instead: with unit-norm
  frames a fresh seqTransf starts near meanP (cosine close to 1) but not at it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor

from .base import (
    HeadConfig,
    TemporalHead,
    TemporalTransformer,
    check_positive_int,
    check_sequence,
    default_heads,
    l2norm,
    learned_embedding,
    masked_mean,
    positions,
)
from .registry import MODELS, make_config


def pool_frames(tokens: Tensor, mask: Tensor) -> Tensor:
    """CLIP4Clip's pooling: normalise each token, masked mean, normalise. (B,N,D) -> (B,D)."""
    return l2norm(masked_mean(l2norm(tokens), mask))


class MeanP(TemporalHead):
    """Parameter-free masked mean of L2-normalised frame features."""

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        return pool_frames(frames, mask)


@dataclasses.dataclass
class SeqTransfConfig(HeadConfig):
    layers: int = 4
    heads: int | None = None  # None: CLIP's rule, dim // 64 (at least 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("layers", self.layers)
        if self.heads is None:
            self.heads = default_heads(self.dim)
        check_positive_int("heads", self.heads)
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")


class SeqTransf(TemporalHead):
    """Frame position embedding + temporal transformer + residual + masked mean (CLIP4Clip)."""

    def __init__(self, config: SeqTransfConfig) -> None:
        super().__init__(config)
        self.frame_pos = learned_embedding(config.num_frames, config.dim)  # (T_max, D)
        self.transformer = TemporalTransformer(config.dim, config.layers, config.heads)

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        pos = positions(self.frame_pos, frames.shape[1], "frames")  # (T, D)
        out = self.transformer(frames + pos, mask) + frames  # (B, T, D), residual as CLIP4Clip
        return pool_frames(out, mask)


@MODELS.register("meanP")
def mean_p(**cfg: Any) -> MeanP:
    return MeanP(make_config(HeadConfig, cfg))


@MODELS.register("seqTransf")
def seq_transf(**cfg: Any) -> SeqTransf:
    return SeqTransf(make_config(SeqTransfConfig, cfg))
