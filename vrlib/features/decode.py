"""Decoding in DataLoader workers and packing frames into full encoder batches.

Decoding runs in ``torch.utils.data.DataLoader`` workers (open each file once with
:func:`~vrlib.data.video.read_sampled`, pick frame indices with the
:class:`~vrlib.data.sampling.SamplingConfig`, decode) while the main process preprocesses and
encodes. Frames of consecutive videos are packed into full encoder batches and the output is split
back per video, so short videos do not waste batch slots. A decode error is caught in the worker
and comes back as an error record, so ``on_error="skip"`` can list it and ``on_error="raise"``
raises :class:`VideoDecodeError` naming the file (a worker traceback would not).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vrlib.data.video import VideoDecodeError, read_sampled


def _clip_range(item: Any, info: Any) -> tuple[int, int]:
    """First frame and frame count of the item's ``[start, end]`` clip (whole file if unset)."""
    if item.start is None and item.end is None:
        return 0, info.num_frames
    start = float(item.start or 0.0)
    end = info.duration if item.end is None else min(float(item.end), info.duration)
    first = max(0, math.floor(start * info.fps))
    last = min(info.num_frames, math.ceil(end * info.fps))
    if last <= first:
        raise VideoDecodeError(
            str(item.path),
            f"clip [{item.start}, {item.end}] s has no frames in a video of "
            f"{info.duration:.3f} s ({info.num_frames} frames at {info.fps:g} fps)",
        )
    return first, last - first


def _decode_item(item: Any, sampling: Any, seed: int, epoch: int = 0) -> dict[str, Any]:
    """Open, sample and decode one video (the file is opened once); errors become a record."""

    def choose(info: Any) -> np.ndarray:
        if not info.fps > 0:
            raise VideoDecodeError(str(item.path), f"invalid frame rate {info.fps!r}")
        first, count = _clip_range(item, info)
        local = sampling.indices(count, info.fps, seed=seed, epoch=epoch, video=item.video_id)
        indices = first + np.asarray(local, dtype=np.int64)
        if indices.size == 0:
            raise VideoDecodeError(str(item.path), f"sampling {sampling.key()} chose no frames")
        return indices

    try:
        frames, indices, info = read_sampled(
            item.path, choose, size=sampling.size, resize=sampling.resize
        )
    except VideoDecodeError as e:
        return {"video_id": item.video_id, "path": e.path, "error": e.reason}
    return {
        "video_id": item.video_id,
        "path": str(item.path),
        "error": None,
        "frames": torch.from_numpy(np.ascontiguousarray(frames)),  # (T, H, W, 3) uint8
        "indices": indices,
        "timestamps": indices / info.fps,
    }


class _DecodeDataset(Dataset):
    """One item per video: uint8 frames and their indices, or an error record."""

    def __init__(self, items: Sequence[Any], sampling: Any, seed: int, epoch: int = 0) -> None:
        self.items = list(items)
        self.sampling = sampling
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return _decode_item(self.items[i], self.sampling, self.seed, self.epoch)


def _as_is(sample: Any) -> Any:
    """Collate function that keeps a sample untouched (module level so workers can pickle it)."""
    return sample


def _worker_init(_: int) -> None:
    # Decoding is the worker's whole job; one torch thread each avoids oversubscribing the CPU.
    torch.set_num_threads(1)


def _decode_loader(
    items: Sequence[Any], sampling: Any, seed: int, num_workers: int, epoch: int = 0
) -> Iterator[dict]:
    """Decoded videos in order, produced by ``num_workers`` processes (0: in this process)."""
    if num_workers == 0:
        return (_decode_item(item, sampling, seed, epoch) for item in items)
    loader = DataLoader(
        _DecodeDataset(items, sampling, seed, epoch),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_is,
        worker_init_fn=_worker_init,
    )
    return iter(loader)


@dataclass
class _Pending:
    record: dict[str, Any]
    parts: list[torch.Tensor] = field(default_factory=list)
    done: int = 0  # frames of this video already encoded

    @property
    def total(self) -> int:
        return int(self.record["pixels"].shape[0])


class _FrameBatcher:
    """Packs preprocessed frames of consecutive videos into encoder batches of ``batch_size``.

    Records carry ``pixels (T, 3, S, S)``: preprocessing happens per video, before packing,
    because decoded frames of different videos may differ in size and cannot be concatenated.
    ``add`` returns the videos whose frames are all encoded, in the order they were added; a
    video may be split across batches. ``flush`` encodes what is left in one smaller batch.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> None:
        self.encode = encode
        self.batch_size = batch_size
        self._pending: deque[_Pending] = deque()
        self._queued = 0  # frames added but not encoded yet

    def add(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        self._pending.append(_Pending(record))
        self._queued += self._pending[-1].total
        finished: list[dict[str, Any]] = []
        while self._queued >= self.batch_size:
            finished += self._encode_next(self.batch_size)
        return finished

    def flush(self) -> list[dict[str, Any]]:
        return self._encode_next(self._queued) if self._queued else []

    def _encode_next(self, n: int) -> list[dict[str, Any]]:
        pieces, owners, taken = [], [], 0
        for p in self._pending:
            take = min(n - taken, p.total - p.done)
            if take > 0:
                pieces.append(p.record["pixels"][p.done : p.done + take])
                owners.append((p, take))
                taken += take
            if taken == n:
                break
        out = self.encode(torch.cat(pieces))  # (n, 3, S, S) -> (n, d)
        for (p, take), feats in zip(owners, out.split([t for _, t in owners]), strict=True):
            p.parts.append(feats)
            p.done += take
        self._queued -= n
        finished = []
        while self._pending and self._pending[0].done == self._pending[0].total:
            p = self._pending.popleft()
            rec = {k: v for k, v in p.record.items() if k != "pixels"}
            finished.append({**rec, "features": torch.cat(p.parts)})  # (T, d)
        return finished


def _preprocess(encoder: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Replace a record's uint8 ``frames (T, H, W, 3)`` by ``pixels (T, 3, S, S)`` for the encoder."""
    rec = {k: v for k, v in record.items() if k != "frames"}
    with torch.no_grad():
        rec["pixels"] = encoder.preprocess_frames(record["frames"])  # (T, 3, S, S)
    return rec


def _encoder_fn(encoder: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Pixels (N, 3, S, S) -> float32 CPU features (N, d), without autograd."""

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return encoder.encode_preprocessed(pixels).float().cpu()

    return encode
