"""The batch sampler: global batches of captions with no video twice, each rank its slice.

``ContrastiveBatchSampler`` draws epoch ``e`` from ``numpy.random.default_rng((seed, e))``, so a
resumed run and every rank see the same batches; with ``twin_of`` a video and its reversed twin
are packed into the same batch (hard negatives).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vrlib.train.config import TrainConfig


def _keep_batch(batch: Any) -> Any:
    """DataLoader collate_fn: the datasets' ``__getitems__`` already returns a whole batch."""
    return batch


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
        twin_of: Any = None,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the world size {world_size}"
            )
        self.video_of = np.asarray(caption_to_video, dtype=np.int64)
        self.batch_size, self.sampling, self.seed = batch_size, sampling, seed
        self.rank, self.world_size, self.max_open = rank, world_size, max_open
        self.epoch = 0
        self.twin_of = None if twin_of is None else np.asarray(twin_of, dtype=np.int64)
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
        units = (
            [[i] for i in order.tolist()]
            if self.twin_of is None
            else _twin_units(order, self.video_of, self.twin_of)
        )
        batches = _pack_without_repeats(units, self.video_of, self.batch_size, self.max_open)
        assert len(batches) == len(self), (len(batches), len(self))
        return batches

    def __iter__(self):
        local = self.batch_size // self.world_size
        for batch in self.global_batches(self.epoch):
            yield batch[self.rank * local : (self.rank + 1) * local]


def _twin_units(order: np.ndarray, video_of: np.ndarray, twin_of: np.ndarray) -> list[list[int]]:
    """``order`` as packing units: each caption with the next unused caption of its video's twin.

    Walks ``order``; a caption whose video has a twin takes the twin's earliest caption still
    unplaced (same round when both have one), so the packer keeps the pair in one batch.
    """
    queues: dict[int, list[int]] = {}
    for i in order.tolist():
        queues.setdefault(int(video_of[i]), []).append(i)
    heads = dict.fromkeys(queues, 0)  # next unplaced position in each video's queue
    units = []
    for i in order.tolist():
        v = int(video_of[i])
        if heads[v] >= len(queues[v]) or queues[v][heads[v]] != i:
            continue  # already placed as a twin's partner
        heads[v] += 1
        unit, w = [i], int(twin_of[v])
        if w >= 0 and heads.get(w, 0) < len(queues.get(w, ())):
            unit.append(queues[w][heads[w]])
            heads[w] += 1
        units.append(unit)
    return units


def _pack_without_repeats(
    units: list[list[int]], video_of: np.ndarray, size: int, max_open: int
) -> list[list[int]]:
    """Pack the items of ``units`` into ``n // size`` full batches, no video twice where possible.

    A unit (one caption, or a caption with its twin's) goes whole to the oldest open batch that
    has room and lacks its videos (a new one if none, up to ``max_open``; beyond that it is split
    and each item goes to the oldest batch lacking its video, or accepts a repeat in the oldest),
    so batches keep the random order. What is left in unfinished batches is repacked by
    ``_pack_leftovers``.
    """
    done: list[list[int]] = []
    open_: list[tuple[list[int], set[int]]] = []

    def place(unit: list[int]) -> None:
        vids = {int(video_of[i]) for i in unit}
        slot = next(
            (k for k, (items, seen) in enumerate(open_)
             if not vids & seen and len(items) + len(unit) <= size),
            None,
        )  # fmt: skip
        if slot is None:
            if len(open_) < max_open:
                open_.append(([], set()))
                slot = len(open_) - 1
            elif len(unit) > 1:
                for i in unit:
                    place([i])
                return
            else:
                slot = 0
        items, seen = open_[slot]
        items.extend(unit)
        seen.update(vids)
        if len(items) == size:
            done.append(items)
            del open_[slot]

    for unit in units:
        place(unit)
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
