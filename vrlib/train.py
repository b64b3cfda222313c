"""One training engine for every temporal head (and the CLIP encoder, end to end).

Read top to bottom: config -> datasets -> batch sampler -> the objective (one forward = one loss)
-> ``Trainer`` (optimiser, schedule, AMP, one step, checkpoints) -> ``fit`` (the epoch loop in
plain sight) -> evaluation.

Two modes (``TrainConfig.mode``):

- ``"cached"`` (the CPU default): the CLIP encoder is frozen and its per-frame / per-caption
  features were extracted once (``vrlib.features``); a batch is ``CachedPairs`` rows.
- ``"end_to_end"``: frames as uint8 pixels and captions as strings (``EndToEndPairs``) go through
  a trainable ``ClipEncoder`` (``encoder.model.encode_image`` on (B*T, 3, S, S), ``encode_text``)
  and then the head, as CLIP4Clip fine-tunes CLIP. Frame and text features are L2-normalised
  before the head, exactly as the cached features are, so both modes feed heads the same thing.

Choices (documented because they change numbers):

- ``batch_size`` is the *global* batch (split evenly over ranks), so a config gives the same
  training whatever the number of processes.
- Sampling per epoch: ``"all_captions"`` (default; CLIP4Clip's ``expand_msrvtt_sentences`` for
  MSR-VTT 9k) uses every (caption, video) pair once, in rounds (round k = the k-th of each video's
  shuffled captions, shuffled), i.e. successive random one-caption-per-video passes;
  ``"one_caption_per_video"`` is one such round (CLIP4Clip's default, Frozen in Time). Batches
  are packed so that a global batch holds no video twice (always with equal caption counts per
  video; with very unequal counts a few tail batches may repeat, and tiny datasets must). A
  repeat is masked out of both softmaxes as a false negative (``losses.same_video_mask``),
  never counted as a negative. Incomplete last batches are dropped (contrastive batches must be full and equal
  across ranks); the dropped captions differ each epoch.
- Loss: symmetric InfoNCE on the full global similarity matrix (``vrlib.losses`` explains the
  gradient scaling under DDP); heads with several similarity terms (TAB) are trained with
  ``sum(w_k * InfoNCE(part_k))`` using ``head.part_weights()`` (CLIP2Video's
  ``w * L_global + (1 - w) * L_aligned``), all sharing one learnable temperature.
- AdamW with no weight decay on biases, norms, embeddings and the logit scale; linear warm-up then
  cosine decay per optimiser step (open_clip's formulas); gradient clipping on the global norm.
- The sampler is stateless: epoch ``e`` is drawn from ``numpy.random.default_rng((seed, e))``, so
  resuming at an epoch boundary reproduces the uninterrupted run exactly, together with the
  model, optimiser, scheduler, scaler and RNG states (every rank's) saved in the checkpoint.
- Under ``torchrun`` (WORLD_SIZE > 1) ``fit`` initialises the process group from the environment,
  wraps head + loss (+ encoder) in DistributedDataParallel, and only rank 0 writes files. Every
  rank evaluates the (small) validation set itself, so no rank waits on another. Instead of
  torch's DistributedSampler, ``ContrastiveBatchSampler`` gives each rank its slice of the same
  global batches (no padding duplicates, no repeated video across ranks). The process group is
  left initialised for the caller (``dist.destroy_process_group()`` at the end of the script).
  Without WORLD_SIZE nothing global is touched: the same call works in a notebook.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vrlib.io import atomic_save_torch, atomic_write_text, write_json
from vrlib.losses import ContrastiveLoss, gather_side, gather_with_grad, same_video_mask

__all__ = [
    "CachedPairs",
    "ContrastiveBatchSampler",
    "EndToEndPairs",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "evaluate_model",
    "fit",
    "lr_factor",
    "similarity_matrix",
]

METRIC_KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR")
SELECT_METRICS = tuple(f"{d}_{k}" for d in ("t2v", "v2t") for k in METRIC_KEYS) + ("rsum",)
# Keys that may change between a run and its resume: they do not change what is trained.
RESUME_FREE_KEYS = frozenset(
    {"resume", "num_workers", "log_every", "progress", "device", "eval_every_epochs",
     "eval_chunk_size", "checkpoint_dir"}
)  # fmt: skip


# ----------------------------------------------------------------------------- config


class TrainConfig(BaseModel):
    """Everything ``fit`` needs, validated; unknown keys are rejected by name.

    Defaults follow CLIP4Clip (lr 1e-4 for the head, 1e-3 of it for CLIP, weight decay 0.2,
    warm-up 10 %, clip 1.0) except the temperature, which starts at CLIP's 0.07 because a
    cached-feature head has no pretrained logit scale to inherit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2, description="global batch (all ranks together)")
    lr: float = Field(1e-4, gt=0, description="head (and temperature) learning rate")
    encoder_lr: float | None = Field(None, gt=0, description="end_to_end: CLIP lr; None = lr*1e-3")
    weight_decay: float = Field(0.2, ge=0)
    warmup: int | float = Field(0.1, description="int = steps; float in [0, 1) = fraction")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float | None = Field(1.0, gt=0, description="max global grad norm; None = off")
    seed: int = 0
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    device: str = "auto"
    num_workers: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1, description="steps between step-log entries")
    eval_every_epochs: int = Field(1, ge=0, description="0 = evaluate after the last epoch only")
    eval_chunk_size: int = Field(256, ge=1)
    checkpoint_dir: Path | None = None
    resume: bool = True
    mode: Literal["cached", "end_to_end"] = "cached"
    sampling: Literal["all_captions", "one_caption_per_video"] = "all_captions"
    temperature: float = Field(0.07, gt=0.01, description="initial softmax temperature")
    learn_temperature: bool = True
    select_metric: str = "t2v_R@1"
    ddp_find_unused_parameters: bool = False
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _name_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown TrainConfig key(s) {unknown}; valid keys: {sorted(cls.model_fields)}"
                )
        return data

    @field_validator("warmup")
    @classmethod
    def _check_warmup(cls, v: int | float) -> int | float:
        if isinstance(v, float) and not 0.0 <= v < 1.0:
            raise ValueError(f"warmup={v}: a float is a fraction in [0, 1); give steps as an int")
        if v < 0:
            raise ValueError(f"warmup={v} must be >= 0")
        return v

    @field_validator("select_metric")
    @classmethod
    def _check_select(cls, v: str) -> str:
        if v not in SELECT_METRICS:
            raise ValueError(f"select_metric={v!r} is not one of {list(SELECT_METRICS)}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v != "auto":
            torch.device(v)  # raises on a malformed name
        return v

    def warmup_steps(self, total_steps: int) -> int:
        """Warm-up length in optimiser steps for a run of ``total_steps``."""
        if isinstance(self.warmup, float):
            return int(self.warmup * total_steps)
        return self.warmup


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based): linear warm-up, cosine.

    open_clip's schedule: ``(step + 1) / warmup`` during warm-up (so step 0 already moves), then
    ``min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * e / E))`` over the remaining ``E`` steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- datasets


def _as_index(caption_to_video: Any, n_videos: int, n_captions: int, what: str) -> Tensor:
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    if c2v.shape != (n_captions,):
        raise ValueError(
            f"{what}: caption_to_video must have shape ({n_captions},), got {tuple(c2v.shape)}"
        )
    if n_captions and (c2v.min() < 0 or c2v.max() >= n_videos):
        raise ValueError(f"{what}: caption_to_video holds indices outside [0, {n_videos})")
    return c2v


def _pad_frames(frames: Any, mask: Any, what: str) -> tuple[Tensor, Tensor]:
    """A list of (T_i, D) or a padded (N, T, D) + mask -> padded (N, T, D), bool mask (N, T)."""
    if isinstance(frames, (list, tuple)):
        if mask is not None:
            raise ValueError(f"{what}: give a mask only with a padded (N, T, D) tensor")
        if not frames:
            raise ValueError(f"{what}: no videos")
        items = [torch.as_tensor(f) for f in frames]
        bad = [i for i, f in enumerate(items) if f.ndim != 2 or f.shape[0] == 0]
        if bad:
            raise ValueError(f"{what}: items {bad[:5]} are not non-empty (T_i, D) tensors")
        dims = {f.shape[1] for f in items}
        if len(dims) > 1:
            raise ValueError(f"{what}: feature sizes differ across videos: {sorted(dims)}")
        t_max = max(f.shape[0] for f in items)
        out = items[0].new_zeros(len(items), t_max, items[0].shape[1])  # (N, T, D)
        out_mask = torch.zeros(len(items), t_max, dtype=torch.bool)
        for i, f in enumerate(items):
            out[i, : len(f)], out_mask[i, : len(f)] = f, True
        return out, out_mask
    out = torch.as_tensor(frames)
    if out.ndim != 3:
        raise ValueError(
            f"{what}: expected (N, T, D) or a list of (T_i, D), got shape {tuple(out.shape)}"
        )
    if mask is None:
        return out, torch.ones(out.shape[:2], dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"{what}: mask shape {tuple(mask.shape)} != (N, T) {tuple(out.shape[:2])}")
    return out, mask


class CachedPairs(Dataset):
    """(caption, video) training pairs over cached features; one item = one caption + its video.

    Args:
        frames: per-video frame features, a list of (T_i, D) or a padded (N, T, D) with ``mask``.
        text: (C, D) caption features.
        caption_to_video: (C,) index of each caption's video.
        mask: (N, T) bool validity of padded ``frames``.
        tokens, token_mask: (C, L, D) per-token caption features and (C, L) bool, for heads with
            ``needs_tokens``.
        frames_2x, mask_2x: double-rate frames (list or padded (N, 2T, D) + mask) for heads with
            ``needs_double_rate``.

    Items are dicts; ``__getitems__`` returns a whole batch at once (one gather per tensor
    instead of per-item collation), which the DataLoader uses automatically.
    """

    def __init__(
        self,
        frames: Sequence[Tensor] | Tensor,
        text: Tensor,
        caption_to_video: Any,
        *,
        mask: Tensor | None = None,
        tokens: Tensor | None = None,
        token_mask: Tensor | None = None,
        frames_2x: Sequence[Tensor] | Tensor | None = None,
        mask_2x: Tensor | None = None,
    ) -> None:
        self.frames, self.mask = _pad_frames(frames, mask, "CachedPairs.frames")
        self.text = torch.as_tensor(text)
        if self.text.ndim != 2 or self.text.shape[1] != self.frames.shape[2]:
            raise ValueError(
                f"CachedPairs.text: expected (C, {self.frames.shape[2]}), got {tuple(self.text.shape)}"
            )
        n_videos, n_captions = self.frames.shape[0], self.text.shape[0]
        self.caption_to_video = _as_index(caption_to_video, n_videos, n_captions, "CachedPairs")
        self.tokens = self.token_mask = None
        if tokens is not None:
            self.tokens = torch.as_tensor(tokens)
            self.token_mask = (
                torch.ones(self.tokens.shape[:2], dtype=torch.bool)
                if token_mask is None
                else torch.as_tensor(token_mask, dtype=torch.bool)
            )
            if self.tokens.ndim != 3 or self.tokens.shape[0] != n_captions:
                raise ValueError(
                    f"CachedPairs.tokens: expected (C={n_captions}, L, D), got {tuple(self.tokens.shape)}"
                )
            if self.token_mask.shape != self.tokens.shape[:2]:
                raise ValueError(
                    f"CachedPairs.token_mask: shape {tuple(self.token_mask.shape)} != (C, L)"
                )
        self.frames_2x = self.mask_2x = None
        if frames_2x is not None:
            self.frames_2x, self.mask_2x = _pad_frames(frames_2x, mask_2x, "CachedPairs.frames_2x")
            if self.frames_2x.shape[0] != n_videos:
                raise ValueError(
                    f"CachedPairs.frames_2x: {self.frames_2x.shape[0]} videos, frames has {n_videos}"
                )

    @property
    def num_videos(self) -> int:
        return self.frames.shape[0]

    def __len__(self) -> int:
        return self.text.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] if isinstance(v, Tensor) else v for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        cap = torch.as_tensor(list(indices), dtype=torch.long)
        vid = self.caption_to_video[cap]
        batch = {"caption_index": cap, "video_index": vid, "text": self.text[cap]}
        batch.update(self.video_batch(vid))
        if self.tokens is not None:
            batch["tokens"], batch["token_mask"] = self.tokens[cap], self.token_mask[cap]
        return batch

    def video_batch(self, vid: Tensor) -> dict[str, Tensor]:
        """Frames of videos ``vid`` (B,): frames (B, T, D), mask (B, T), and the 2x versions."""
        out = {"frames": self.frames[vid], "mask": self.mask[vid]}
        if self.frames_2x is not None:
            out["frames_2x"], out["mask_2x"] = self.frames_2x[vid], self.mask_2x[vid]
        return out

    def text_batch(self, cap: Tensor) -> dict[str, Tensor]:
        """Caption features of captions ``cap`` (B,): text, and tokens/token_mask when cached."""
        out = {"text": self.text[cap]}
        if self.tokens is not None:
            out["tokens"], out["token_mask"] = self.tokens[cap], self.token_mask[cap]
        return out


class EndToEndPairs(Dataset):
    """(caption, video) pairs as raw pixels and strings, for ``mode="end_to_end"``.

    Args:
        videos: a sequence whose item ``i`` is video ``i``'s sampled frames, uint8 (T_i, H, W, 3)
            numpy or torch, all with the same H, W. It may be lazy (decode in ``__getitem__``;
            DataLoader workers then decode in parallel).
        captions: the C caption strings.
        caption_to_video: (C,) index of each caption's video.
        num_frames: frames per video after padding (default: the longest video, which needs a
            pass over ``videos``; give it for lazy sequences). Equal T on every rank keeps the
            all-gather shapes equal.
        videos_2x: same as ``videos`` at double frame rate, for heads with ``needs_double_rate``.
    """

    def __init__(
        self,
        videos: Sequence[Any],
        captions: Sequence[str],
        caption_to_video: Any,
        *,
        num_frames: int | None = None,
        videos_2x: Sequence[Any] | None = None,
        num_frames_2x: int | None = None,
    ) -> None:
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("EndToEndPairs.captions must be a list of strings")
        self.videos, self.captions = videos, list(captions)
        self.caption_to_video = _as_index(
            caption_to_video, len(videos), len(captions), "EndToEndPairs"
        )
        self.num_frames = num_frames or max(len(v) for v in videos)
        self.videos_2x = videos_2x
        if videos_2x is not None:
            if len(videos_2x) != len(videos):
                raise ValueError(
                    f"EndToEndPairs.videos_2x: {len(videos_2x)} videos, videos has {len(videos)}"
                )
            self.num_frames_2x = num_frames_2x or max(len(v) for v in videos_2x)

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        cap = torch.as_tensor(list(indices), dtype=torch.long)
        vid = self.caption_to_video[cap]
        batch = {
            "caption_index": cap,
            "video_index": vid,
            "captions": [self.captions[i] for i in cap],
        }
        batch.update(self.video_batch(vid))
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])

    def video_batch(self, vid: Tensor) -> dict[str, Tensor]:
        """pixels uint8 (B, T, H, W, 3), mask (B, T) (and pixels_2x, mask_2x when present)."""
        out = dict(
            zip(("pixels", "mask"), self._stack(self.videos, vid, self.num_frames), strict=True)
        )
        if self.videos_2x is not None:
            out["pixels_2x"], out["mask_2x"] = self._stack(self.videos_2x, vid, self.num_frames_2x)
        return out

    def text_batch(self, cap: Tensor) -> dict[str, Any]:
        return {"captions": [self.captions[i] for i in cap]}

    @staticmethod
    def _stack(videos: Sequence[Any], vid: Tensor, t_max: int) -> tuple[Tensor, Tensor]:
        clips = [torch.as_tensor(np.asarray(videos[int(i)])) for i in vid]
        for i, c in zip(vid.tolist(), clips, strict=True):
            if c.dtype != torch.uint8 or c.ndim != 4 or c.shape[-1] != 3 or not 0 < len(c) <= t_max:
                raise ValueError(
                    f"EndToEndPairs video {i}: expected uint8 (T<= {t_max}, H, W, 3), "
                    f"got {c.dtype} {tuple(c.shape)}"
                )
        sizes = {tuple(c.shape[1:3]) for c in clips}
        if len(sizes) > 1:
            raise ValueError(f"EndToEndPairs: frame sizes differ within a batch: {sorted(sizes)}")
        h, w = sizes.pop()
        pixels = torch.zeros(len(clips), t_max, h, w, 3, dtype=torch.uint8)  # (B, T, H, W, 3)
        mask = torch.zeros(len(clips), t_max, dtype=torch.bool)
        for b, c in enumerate(clips):
            pixels[b, : len(c)], mask[b, : len(c)] = c, True
        return pixels, mask


def _keep_batch(batch: Any) -> Any:
    """DataLoader collate_fn: the datasets' ``__getitems__`` already returns a whole batch."""
    return batch


# ----------------------------------------------------------------------------- sampling


class ContrastiveBatchSampler:
    """Caption-index batches for one rank, the same global batches on every rank.

    Each epoch, global batches of ``batch_size`` captions are drawn (see the module docstring for
    ``sampling``) and packed so that no video repeats within a global batch when possible; rank
    ``r`` of ``W`` yields rows ``[r*b, (r+1)*b)`` of each (``b = batch_size / W``), so gathering
    the ranks' batches in rank order recreates the global batch. Deterministic in (seed, epoch).
    """

    def __init__(
        self,
        caption_to_video: Tensor,
        batch_size: int,
        *,
        sampling: str = "all_captions",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_open: int = 8,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the world size {world_size}"
            )
        self.video_of = np.asarray(caption_to_video, dtype=np.int64)
        self.batch_size, self.sampling, self.seed = batch_size, sampling, seed
        self.rank, self.world_size, self.max_open = rank, world_size, max_open
        self.epoch = 0
        n = self._epoch_size()
        if n < batch_size:
            raise ValueError(f"{n} training pairs per epoch, fewer than batch_size={batch_size}")

    def _epoch_size(self) -> int:
        if self.sampling == "one_caption_per_video":
            return len(np.unique(self.video_of))
        return len(self.video_of)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._epoch_size() // self.batch_size

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """This epoch's caption order, in rounds: round k holds the k-th (random) caption of each
        video, shuffled, so consecutive items rarely share a video and the packer rarely has to
        accept a repeat. ``one_caption_per_video`` is round 0 alone."""
        perm = rng.permutation(len(self.video_of))
        videos = self.video_of[perm]
        by_video = np.argsort(videos, kind="stable")  # positions in perm grouped by video
        starts = np.searchsorted(videos[by_video], videos[by_video])  # first slot of each video
        rounds = np.empty(len(perm), dtype=np.int64)
        rounds[by_video] = np.arange(len(perm)) - starts  # k-th caption of its video in perm
        order = perm[np.argsort(rounds, kind="stable")]  # round by round, random within a round
        if self.sampling == "one_caption_per_video":
            order = order[: len(np.unique(self.video_of))]
        return order

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches of caption indices (full batches only)."""
        order = self._order(np.random.default_rng((self.seed, epoch)))
        batches = _pack_without_repeats(order, self.video_of, self.batch_size, self.max_open)
        assert len(batches) == len(self), (len(batches), len(self))
        return batches

    def __iter__(self):
        local = self.batch_size // self.world_size
        for batch in self.global_batches(self.epoch):
            yield batch[self.rank * local : (self.rank + 1) * local]


def _pack_without_repeats(
    order: np.ndarray, video_of: np.ndarray, size: int, max_open: int
) -> list[list[int]]:
    """Pack ``order`` into ``len(order) // size`` full batches, no video twice where possible.

    Each item goes to the oldest open batch that lacks its video (a new one if none, up to
    ``max_open``; beyond that a repeat is accepted), so batches keep the random order. What is
    left in unfinished batches is repacked by ``_pack_leftovers``.
    """
    done: list[list[int]] = []
    open_: list[tuple[list[int], set[int]]] = []
    for i in order.tolist():
        v = int(video_of[i])
        slot = next((k for k, (_, seen) in enumerate(open_) if v not in seen), None)
        if slot is None:
            if len(open_) < max_open:
                open_.append(([], set()))
                slot = len(open_) - 1
            else:
                slot = 0
        items, seen = open_[slot]
        items.append(i)
        seen.add(v)
        if len(items) == size:
            done.append(items)
            del open_[slot]
    return done + _pack_leftovers([i for items, _ in open_ for i in items], video_of, size)


def _pack_leftovers(pool: list[int], video_of: np.ndarray, size: int) -> list[list[int]]:
    """Full batches from a small pool: each takes one item of the videos with the most items
    left (which avoids repeats whenever the pool allows it); repeats only when fewer than
    ``size`` videos remain."""
    by_video: dict[int, list[int]] = {}
    for i in pool:
        by_video.setdefault(int(video_of[i]), []).append(i)
    batches = []
    while sum(len(items) for items in by_video.values()) >= size:
        ranked = sorted(by_video, key=lambda v: -len(by_video[v]))  # stable: pool order on ties
        batch = []
        while len(batch) < size:  # more than one pass only when repeats are unavoidable
            for v in ranked:
                if by_video[v] and len(batch) < size:
                    batch.append(by_video[v].pop(0))
        batches.append(batch)
    return batches


# ----------------------------------------------------------------------------- objective


def _video_kwargs(head: nn.Module, batch: dict[str, Any], what: str) -> dict[str, Tensor]:
    """``video_side`` arguments from a batch, checking the head gets the inputs it needs."""
    kw = {"frames": batch["frames"], "mask": batch["mask"]}
    if getattr(head, "needs_double_rate", False):
        if batch.get("frames_2x") is None:
            raise ValueError(
                f"{_head_name(head)} needs_double_rate but the {what} data has no frames_2x"
            )
        kw.update(frames_2x=batch["frames_2x"], mask_2x=batch["mask_2x"])
    return kw


def _text_kwargs(head: nn.Module, batch: dict[str, Any], what: str) -> dict[str, Tensor]:
    """``text_side`` arguments from a batch, checking the head gets the inputs it needs."""
    kw = {"text": batch["text"]}
    if getattr(head, "needs_tokens", False):
        if batch.get("tokens") is None:
            raise ValueError(f"{_head_name(head)} needs_tokens but the {what} data has no tokens")
        kw.update(tokens=batch["tokens"], token_mask=batch["token_mask"])
    return kw


def _head_name(head: nn.Module) -> str:
    return getattr(head, "name", "") or type(head).__name__


def _similarity_parts(head: nn.Module, ts: dict, vs: dict) -> list[tuple[float, Tensor]]:
    """[(weight, (Bt, Bv) similarity)] of each term; a head without parts is one term of weight 1."""
    if hasattr(head, "part_weights") and hasattr(head, "similarity_parts"):
        parts = head.similarity_parts(ts, vs)
        return [(float(w), parts[name]) for name, w in head.part_weights().items()]
    return [(1.0, head.similarity(ts, vs))]


class _Objective(nn.Module):
    """Head + loss (+ the CLIP model end to end): ``forward(batch) -> loss``.

    One module so DistributedDataParallel sees every trainable parameter, the temperature
    included, in a single forward.
    """

    def __init__(self, head: nn.Module, loss: ContrastiveLoss, encoder: Any = None) -> None:
        super().__init__()
        self.head, self.loss = head, loss
        self.encoder = encoder  # a ClipEncoder (plain object); its .model is registered below
        self.clip = encoder.model if encoder is not None else None

    def forward(self, batch: dict[str, Any]) -> Tensor:
        if self.clip is not None:
            batch = encode_batch_end_to_end(
                self.encoder, batch, tokens=getattr(self.head, "needs_tokens", False)
            )
        vs = gather_side(self.head.video_side(**_video_kwargs(self.head, batch, "training")))
        ts = gather_side(self.head.text_side(**_text_kwargs(self.head, batch, "training")))
        ignore = same_video_mask(gather_with_grad(batch["video_index"]))  # (B, B) false negatives
        ignore = ignore if ignore.any() else None
        return sum(
            w * self.loss(sim, ignore=ignore) for w, sim in _similarity_parts(self.head, ts, vs)
        )


def encode_batch_end_to_end(
    encoder: Any, batch: dict[str, Any], tokens: bool = False
) -> dict[str, Any]:
    """Pixels and caption strings -> the cached-mode batch (features), with gradients.

    Frames: ``encoder.preprocess_frames`` then ``encoder.model.encode_image`` on the valid frames
    only (B*T, 3, S, S), L2-normalised and scattered back into (B, T, D). Text:
    ``encoder.tokenizer`` then ``encode_text``, L2-normalised. With ``tokens`` the per-token text
    features come from ``encoder.text_token_features`` (vrlib.encoders), with gradients.
    """
    out = dict(batch)
    out["frames"] = _encode_pixels(encoder, batch["pixels"], batch["mask"])
    if "pixels_2x" in batch:
        out["frames_2x"] = _encode_pixels(encoder, batch["pixels_2x"], batch["mask_2x"])
    out.update(_encode_captions(encoder, batch["captions"], tokens))
    return out


def _encode_captions(encoder: Any, captions: list[str], tokens: bool) -> dict[str, Tensor]:
    """text (B, D) L2-normalised, and with ``tokens`` the per-token features (B, L, D) + mask."""
    device = next(encoder.model.parameters()).device
    ids = encoder.tokenizer(list(captions)).to(device)  # (B, L)
    out = {"text": F.normalize(encoder.model.encode_text(ids).float(), dim=-1)}
    if tokens:
        if not hasattr(encoder, "text_token_features"):
            raise NotImplementedError(f"{type(encoder).__name__} has no text_token_features(ids)")
        out["tokens"] = encoder.text_token_features(ids).float()  # (B, L, D), with gradients
        out["token_mask"] = encoder.token_mask(ids)
    return out


def _encode_pixels(encoder: Any, pixels: Tensor, mask: Tensor) -> Tensor:
    b, t = mask.shape
    valid = mask.reshape(-1)  # (B*T,)
    flat = pixels.reshape(b * t, *pixels.shape[2:])[valid.cpu()]  # (n_valid, H, W, 3)
    device = next(encoder.model.parameters()).device
    x = encoder.preprocess_frames(flat).to(device)  # (n_valid, 3, S, S)
    feats = F.normalize(encoder.model.encode_image(x).float(), dim=-1)  # (n_valid, D)
    out = feats.new_zeros(b * t, feats.shape[-1])
    out[valid.to(device)] = feats
    return out.view(b, t, -1)  # (B, T, D)


# ----------------------------------------------------------------------------- helpers


def _distributed_context() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group from torchrun's env."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local


def _resolve_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None = full fp32; on CUDA "auto" is bf16 where supported, else fp16 (with a GradScaler)."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cuda" and cfg.amp == "fp16":
        raise ValueError(f"amp='fp16' needs a CUDA device, got device={device}")
    return torch.float16 if cfg.amp == "fp16" else torch.bfloat16


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the global RNG third-party code may use)
    torch.manual_seed(seed)


def _no_decay(name: str, param: Tensor, module: nn.Module) -> bool:
    """Biases, norm scales (1-D), embeddings and the logit scale are not weight-decayed."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.Embedding)
    return (
        param.ndim < 2 or isinstance(module, norms) or "embedding" in name or "logit_scale" in name
    )


def _param_groups(
    named: list[tuple[str, nn.Module]], lrs: list[float], weight_decay: float
) -> list[dict]:
    """AdamW groups: (decay, no decay) for each of the (name, module, lr) parts."""
    groups = []
    for (label, module), lr in zip(named, lrs, strict=True):
        owner = {f"{m_name}.{p_name}".lstrip("."): m for m_name, m in module.named_modules()
                 for p_name, _ in m.named_parameters(recurse=False)}  # fmt: skip
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if _no_decay(name, p, owner[name]) else decay).append(p)
        for params, wd, kind in ((decay, weight_decay, "decay"), (no_decay, 0.0, "no_decay")):
            if params:
                groups.append(
                    {"params": params, "lr": lr, "weight_decay": wd, "name": f"{label}/{kind}"}
                )
    return groups


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(state["python"])


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` (features as float32); strings and pixels for the encoder stay."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, Tensor) and not k.startswith("pixels"):
            v = v.to(device, non_blocking=True)
            out[k] = v.float() if v.is_floating_point() else v
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Optimiser, schedule, AMP, one training step and the checkpointable state of a run.

    ``fit`` drives it epoch by epoch; tests and benchmarks call ``train_step`` directly.
    """

    def __init__(
        self, model: nn.Module, train_data: Dataset, cfg: TrainConfig, encoder: Any = None
    ) -> None:
        _check_mode(cfg, train_data, encoder, "train_data")
        self.cfg, self.head, self.encoder, self.data = cfg, model, encoder, train_data
        self.rank, self.world_size, local_rank = _distributed_context()
        self.device = _resolve_device(cfg, local_rank)
        seed_everything(cfg.seed + self.rank)
        self.amp_dtype = _amp_dtype(cfg, self.device)
        self.loss = ContrastiveLoss(cfg.temperature, learnable=cfg.learn_temperature)
        self.objective = _Objective(model, self.loss, encoder).to(self.device)
        if encoder is not None:
            _make_trainable(encoder)
        self.trainable = [p for p in self.objective.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError(
                f"{_head_name(model)}: nothing to train (no trainable parameters and learn_temperature=False)"
            )
        self.step_module: nn.Module = self.objective
        if self.world_size > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.objective, find_unused_parameters=cfg.ddp_find_unused_parameters
            )
        self.sampler = ContrastiveBatchSampler(
            train_data.caption_to_video, _global_batch(cfg, train_data, self.world_size),
            sampling=cfg.sampling, seed=cfg.seed, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(self._groups(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        warmup = cfg.warmup_steps(self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, self.total_steps, cfg.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.epoch, self.step = 0, 0

    def _groups(self) -> list[dict]:
        parts, lrs = [("head", self.head), ("loss", self.loss)], [self.cfg.lr, self.cfg.lr]
        if self.encoder is not None:
            parts.append(("encoder", self.encoder.model))
            lrs.append(self.cfg.encoder_lr or self.cfg.lr * 1e-3)
        return _param_groups(parts, lrs, self.cfg.weight_decay)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def loader(self, epoch: int) -> DataLoader:
        """This rank's batches of ``epoch`` (worker seeds from a per-epoch generator, not global RNG)."""
        self.sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return DataLoader(
            self.data, batch_sampler=self.sampler, collate_fn=_keep_batch,
            num_workers=self.cfg.num_workers, generator=gen,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )  # fmt: skip

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, Any], timing: bool = False) -> dict[str, float]:
        """One optimiser step on this rank's part of a global batch.

        Returns ``loss`` (the global-batch loss), ``grad_norm`` (before clipping), ``lr`` (of
        the head) and, with ``timing``, seconds spent in ``forward``, ``backward`` and ``optim``
        (synchronising CUDA, so leave it off in real runs).
        """
        sync = (
            (lambda: torch.cuda.synchronize(self.device))
            if timing and self.device.type == "cuda"
            else (lambda: None)
        )
        t0 = time.perf_counter()
        self.objective.train()
        self.optimizer.zero_grad(set_to_none=True)
        batch = _to_device(batch, self.device)
        with self.autocast():
            loss = self.step_module(batch)
        sync()
        t1 = time.perf_counter()
        self.scaler.scale(loss).backward()
        sync()
        t2 = time.perf_counter()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, max_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.loss.clamp_()
        self.step += 1
        sync()
        out = {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": lr}
        if timing:
            out.update(forward=t1 - t0, backward=t2 - t1, optim=time.perf_counter() - t2)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, schedule, scaler, RNGs."""
        rng = _rng_state()
        if self.world_size > 1:
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, rng)
            rng_by_rank = gathered
        else:
            rng_by_rank = [rng]
        state = {
            "version": 1,
            "epoch": self.epoch,
            "step": self.step,
            "config": self.cfg.model_dump(mode="json"),
            "model": _cpu_state(self.head),
            "loss": _cpu_state(self.loss),
            "logit_scale": float(self.loss.logit_scale.detach()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_by_rank,
            "sampler": {
                "seed": self.cfg.seed,
                "next_epoch": self.epoch,
                "sampling": self.cfg.sampling,
            },
        }
        if self.encoder is not None:
            state["encoder"] = _cpu_state(self.encoder.model)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_resume_config(state["config"], self.cfg)
        self.head.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        if self.encoder is not None:
            self.encoder.model.load_state_dict(state["encoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        if self.rank < len(state["rng"]):
            _set_rng_state(state["rng"][self.rank])
        else:
            warnings.warn(
                f"checkpoint has no RNG state for rank {self.rank}; reseeding", stacklevel=2
            )
            seed_everything(self.cfg.seed + self.rank + 7919 * self.epoch)


def _make_trainable(encoder: Any) -> None:
    bad = sorted({str(p.dtype) for p in encoder.model.parameters() if p.dtype != torch.float32})
    if bad:
        raise ValueError(
            f"end_to_end training needs fp32 encoder weights, got {bad}; load_clip(..., precision='fp32')"
        )
    encoder.model.requires_grad_(True)


def _check_mode(cfg: TrainConfig, data: Any, encoder: Any, what: str) -> None:
    want = EndToEndPairs if cfg.mode == "end_to_end" else CachedPairs
    if not isinstance(data, want):
        raise TypeError(
            f"{what}: mode={cfg.mode!r} needs a {want.__name__}, got {type(data).__name__}"
        )
    if cfg.mode == "end_to_end" and encoder is None:
        raise ValueError("mode='end_to_end' needs fit(..., encoder=ClipEncoder)")
    if cfg.mode == "cached" and encoder is not None:
        raise ValueError(
            "an encoder was given but mode='cached' (features are precomputed); use mode='end_to_end'"
        )


def _global_batch(cfg: TrainConfig, data: Dataset, world_size: int) -> int:
    """cfg.batch_size, lowered (with a warning) when an epoch has fewer pairs than one batch."""
    per_epoch = (
        len(data) if cfg.sampling == "all_captions" else len(torch.unique(data.caption_to_video))
    )
    if per_epoch >= cfg.batch_size:
        return cfg.batch_size
    size = per_epoch // world_size * world_size
    if size < max(2, world_size):
        raise ValueError(
            f"train_data has {per_epoch} pairs per epoch: too few for a contrastive batch"
        )
    warnings.warn(
        f"batch_size={cfg.batch_size} > {per_epoch} pairs per epoch; using {size}", stacklevel=3
    )
    return size


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.model_dump(mode="json")
    changed = sorted(k for k in now if k not in RESUME_FREE_KEYS and saved.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume: the checkpoint was trained with different settings ({diffs}); "
            "use another checkpoint_dir or resume=False"
        )


# ----------------------------------------------------------------------------- fit


@dataclass
class TrainResult:
    """What ``fit`` returns. ``model`` is left at its final weights; ``best_state`` holds the best.

    Attributes:
        history: one dict per epoch: epoch, step, train_loss, grad_norm, lr, logit_scale, time_s,
            data_s and, when evaluated, val_t2v_R@1 ... val_v2t_MnR.
        steps: step-level log every ``log_every`` steps: step, epoch, loss, grad_norm, lr.
        best_epoch, best_metrics: the epoch with the best ``select_metric`` and its history row.
        best_state / final_state: CPU state dicts {"model", "loss"[, "encoder"]}.
        log_path, csv_path, checkpoint_path: files written (None without ``checkpoint_dir``).
    """

    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    best_epoch: int | None
    best_metrics: dict[str, Any] | None
    best_state: dict[str, dict[str, Tensor]] | None
    final_state: dict[str, dict[str, Tensor]]
    config: dict[str, Any]
    log_path: Path | None = None
    csv_path: Path | None = None
    checkpoint_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fit(
    model: nn.Module,
    train_data: CachedPairs | EndToEndPairs,
    val_data: CachedPairs | EndToEndPairs | None,
    cfg: TrainConfig | dict[str, Any],
    *,
    encoder: Any = None,
) -> TrainResult:
    """Train ``model`` (a temporal head) contrastively; evaluate on ``val_data`` each epoch.

    Args:
        model: a ``TemporalHead`` (vrlib.models) or anything with the same interface; trained in
            place. A head without parameters (meanP) still works: only the temperature trains.
        train_data, val_data: ``CachedPairs`` (mode "cached") or ``EndToEndPairs`` ("end_to_end").
        cfg: a ``TrainConfig`` or a dict of its fields.
        encoder: the ``ClipEncoder`` to fine-tune in "end_to_end" mode (trained in place).

    With ``cfg.checkpoint_dir`` the run writes ``last.pt`` (every epoch), ``best.pt``,
    ``train_log.json``, ``train_log.csv`` and ``config.json`` there (rank 0, atomically), and with
    ``cfg.resume`` a later call continues from ``last.pt`` (a finished run returns at once).
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.model_validate(cfg)
    trainer = Trainer(model, train_data, cfg, encoder)
    if val_data is not None:
        _check_mode(cfg, val_data, encoder, "val_data")
    run = _Run(trainer, val_data)
    run.maybe_resume()
    try:
        for epoch in range(trainer.epoch, cfg.epochs):
            row = run.train_epoch(epoch)
            if val_data is not None and _eval_due(cfg, epoch):
                row.update(run.validate())
            trainer.epoch = epoch + 1
            run.end_epoch(row)
    finally:
        if encoder is not None:  # its weights changed in place: feature caches must not reuse them
            encoder.model.eval()
            if hasattr(encoder, "invalidate_fingerprint"):
                encoder.invalidate_fingerprint()
    return run.result()


def _eval_due(cfg: TrainConfig, epoch: int) -> bool:
    last = epoch + 1 == cfg.epochs
    return last or (cfg.eval_every_epochs > 0 and (epoch + 1) % cfg.eval_every_epochs == 0)


class _Run:
    """Bookkeeping of one ``fit`` call: history, best epoch, files (rank 0 only)."""

    def __init__(self, trainer: Trainer, val_data: Any) -> None:
        self.t, self.val_data, self.cfg = trainer, val_data, trainer.cfg
        self.history: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"epoch", "metrics", "state"}
        self.dir = Path(self.cfg.checkpoint_dir) if self.cfg.checkpoint_dir is not None else None

    def maybe_resume(self) -> None:
        if self.dir is None or not self.cfg.resume or not (self.dir / "last.pt").is_file():
            return
        state = torch.load(self.dir / "last.pt", map_location="cpu", weights_only=True)
        self.t.load_state_dict(state)
        self.history, self.steps = state["history"], state["steps"]
        if state["best"] is not None and (self.dir / "best.pt").is_file():
            best_state = torch.load(self.dir / "best.pt", map_location="cpu", weights_only=True)
            self.best = {**state["best"], "state": best_state}

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        t, start = self.t, time.perf_counter()
        losses, norms, data_s = [], [], 0.0
        bar = _progress(t, epoch)
        tick = time.perf_counter()
        for batch in t.loader(epoch):
            data_s += time.perf_counter() - tick
            out = t.train_step(batch)
            losses.append(out["loss"])
            norms.append(out["grad_norm"])
            if t.step % self.cfg.log_every == 0 or len(losses) == t.steps_per_epoch:
                self.steps.append({"step": t.step, "epoch": epoch + 1, **out})
                bar.set_postfix(loss=f"{out['loss']:.4f}", lr=f"{out['lr']:.2e}")
            bar.update()
            tick = time.perf_counter()
        bar.close()
        return {
            "epoch": epoch + 1,
            "step": t.step,
            "train_loss": float(np.mean(losses)),
            "grad_norm": float(np.mean(norms)),
            "lr": t.optimizer.param_groups[0]["lr"],
            "logit_scale": float(t.loss.scale().detach()),
            "time_s": time.perf_counter() - start,
            "data_s": data_s,
        }

    def validate(self) -> dict[str, Any]:
        metrics = evaluate_model(
            self.t.head, self.val_data, encoder=self.t.encoder, chunk_size=self.cfg.eval_chunk_size,
            device=self.t.device, autocast=self.t.autocast,
        )  # fmt: skip
        return _flatten_metrics(metrics)

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        score = _score(row, self.cfg.select_metric)
        improved = score is not None and (self.best is None or score > self.best["score"])
        if improved:
            self.best = {
                "epoch": row["epoch"],
                "score": score,
                "metrics": row,
                "state": self._state(),
            }
        if self.dir is None:
            return
        ckpt = self.t.state_dict()  # collective under DDP: gathers every rank's RNG state
        if self.t.is_main:
            if improved:
                atomic_save_torch(self.dir / "best.pt", self.best["state"])
            self._save(ckpt)
        if self.t.world_size > 1:
            dist.barrier()  # no rank starts the next epoch before the checkpoint exists

    def _state(self) -> dict[str, dict[str, Tensor]]:
        state = {"model": _cpu_state(self.t.head), "loss": _cpu_state(self.t.loss)}
        if self.t.encoder is not None:
            state["encoder"] = _cpu_state(self.t.encoder.model)
        return state

    def _save(self, ckpt: dict[str, Any]) -> None:
        best = None if self.best is None else {k: v for k, v in self.best.items() if k != "state"}
        ckpt.update(history=self.history, steps=self.steps, best=best)
        _save_checkpoint(self.dir / "last.pt", ckpt)
        config = self.cfg.model_dump(mode="json")
        write_json(self.dir / "config.json", config)
        write_json(
            self.dir / "train_log.json",
            {"config": config, "history": self.history, "steps": self.steps},
        )
        atomic_write_text(self.dir / "train_log.csv", _csv(self.history))

    def result(self) -> TrainResult:
        has_dir = self.dir is not None
        best = self.best
        return TrainResult(
            history=self.history,
            steps=self.steps,
            best_epoch=best["epoch"] if best else None,
            best_metrics=best["metrics"] if best else None,
            best_state=best["state"] if best else None,
            final_state=self._state(),
            config=self.cfg.model_dump(mode="json"),
            log_path=self.dir / "train_log.json" if has_dir else None,
            csv_path=self.dir / "train_log.csv" if has_dir else None,
            checkpoint_path=self.dir / "last.pt" if has_dir else None,
        )


def _save_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """Atomic ``torch.save`` (a module-level function so tests can simulate a crash after it)."""
    atomic_save_torch(path, ckpt)


def _progress(trainer: Trainer, epoch: int):
    from tqdm.auto import tqdm

    disable = not trainer.cfg.progress or not trainer.is_main
    return tqdm(
        total=trainer.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{trainer.cfg.epochs}",
        leave=False,
        disable=disable,
    )


def _flatten_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {f"val_{d}_{k}": float(metrics[d][k]) for d in ("t2v", "v2t") for k in METRIC_KEYS}
    out["val_rsum"] = sum(out[f"val_{d}_R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10))
    return out


def _score(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(f"val_{metric}")
    if value is None:
        return None
    return -value if metric.endswith(("MdR", "MnR")) else value  # ranks: lower is better


def _csv(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def similarity_matrix(
    model: nn.Module,
    data: CachedPairs | EndToEndPairs,
    *,
    encoder: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    autocast: Any = None,
) -> Tensor:
    """(C, V) float32 CPU similarities of every caption with every video of ``data``.

    Sides are computed in chunks of ``chunk_size`` videos / captions (kept on ``device``), then
    ``model.similarity`` fills the matrix block by block, so no (C, V, ...) tensor is ever built.
    With an ``EndToEndPairs`` the ``encoder`` first turns pixels and strings into features.
    """
    device = (
        torch.device(device) if device is not None else next(_tensors(model), torch.zeros(0)).device
    )
    autocast = autocast or contextlib.nullcontext
    was_training = model.training
    model.eval()
    if encoder is not None:
        encoder.model.eval()
    try:
        with autocast():
            vs = _sides(model, data, encoder, device, chunk_size, video=True)
            ts = _sides(model, data, encoder, device, chunk_size, video=False)
            n_c, n_v = len(data), data.num_videos
            sim = torch.empty(n_c, n_v, dtype=torch.float32)
            for c0 in range(0, n_c, chunk_size):
                t_chunk = {k: v[c0 : c0 + chunk_size] for k, v in ts.items()}
                for v0 in range(0, n_v, chunk_size):
                    v_chunk = {k: v[v0 : v0 + chunk_size] for k, v in vs.items()}
                    block = model.similarity(t_chunk, v_chunk)  # (c, v)
                    sim[c0 : c0 + chunk_size, v0 : v0 + chunk_size] = block.float().cpu()
    finally:
        model.train(was_training)
    return sim


def _tensors(model: nn.Module):
    yield from model.parameters()
    yield from model.buffers()


def _sides(
    model: nn.Module, data: Any, encoder: Any, device: torch.device, chunk: int, video: bool
) -> dict[str, Tensor]:
    n = data.num_videos if video else len(data)
    parts: list[dict[str, Tensor]] = []
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(n, start + chunk))
        batch = data.video_batch(idx) if video else data.text_batch(idx)
        batch = _to_device(batch, device)
        if encoder is not None:
            batch = _encode_side_end_to_end(encoder, batch, model, video)
        if video:
            parts.append(model.video_side(**_video_kwargs(model, batch, "validation")))
        else:
            parts.append(model.text_side(**_text_kwargs(model, batch, "validation")))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _encode_side_end_to_end(
    encoder: Any, batch: dict[str, Any], model: nn.Module, video: bool
) -> dict[str, Any]:
    if video:
        out = dict(batch, frames=_encode_pixels(encoder, batch["pixels"], batch["mask"]))
        if "pixels_2x" in batch:
            out["frames_2x"] = _encode_pixels(encoder, batch["pixels_2x"], batch["mask_2x"])
        return out
    return dict(
        batch, **_encode_captions(encoder, batch["captions"], getattr(model, "needs_tokens", False))
    )


def evaluate_model(
    model: nn.Module,
    data: CachedPairs | EndToEndPairs | Tensor | Sequence[Tensor],
    mask: Tensor | None = None,
    text: Tensor | None = None,
    tokens: Tensor | None = None,
    token_mask: Tensor | None = None,
    caption_to_video: Any = None,
    *,
    frames_2x: Any = None,
    mask_2x: Tensor | None = None,
    encoder: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    autocast: Any = None,
    **metric_kw: Any,
) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on ``data`` via ``vrlib.metrics.evaluate``.

    Call it as ``evaluate_model(model, cached_pairs)`` or, with raw tensors as in INTERFACES.md,
    ``evaluate_model(model, frames, mask, text, tokens, token_mask, caption_to_video)``.
    ``metric_kw`` (multi, ties, dsl, ...) goes to ``vrlib.metrics.evaluate``.

    Returns:
        ``{"t2v": {...}, "v2t": {...}, "protocol": {...}}`` as ``vrlib.metrics.evaluate``.
    """
    if not isinstance(data, (CachedPairs, EndToEndPairs)):
        if text is None or caption_to_video is None:
            raise ValueError("evaluate_model with raw frames needs text and caption_to_video")
        data = CachedPairs(
            data, text, caption_to_video, mask=mask, tokens=tokens, token_mask=token_mask,
            frames_2x=frames_2x, mask_2x=mask_2x,
        )  # fmt: skip
    sim = similarity_matrix(
        model, data, encoder=encoder, chunk_size=chunk_size, device=device, autocast=autocast
    )
    return _evaluate_sim(sim, data.caption_to_video.numpy(), **metric_kw)


def _evaluate_sim(sim: Tensor, caption_to_video: np.ndarray, **kw: Any) -> dict[str, Any]:
    from vrlib.metrics import evaluate

    return evaluate(sim, caption_to_video, **kw)
