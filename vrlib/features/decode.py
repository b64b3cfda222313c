"""Decoding in DataLoader workers and packing frames into full encoder batches.

Decoding runs in ``torch.utils.data.DataLoader`` workers (open each file once with
:func:`~vrlib.data.video.iter_sampled`, pick frame indices with the
:class:`~vrlib.data.sampling.SamplingConfig`, decode in chunks of ``CHUNK_FRAMES``) while the main
process preprocesses and encodes. Frames of consecutive chunks are packed into full encoder
batches and the output is split back per video, so short videos do not waste batch slots and
long ones do not hold all their frames at once. A decode error is caught in the worker
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
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vrlib.data.video import VideoDecodeError, iter_sampled


def clip_range(item: Any, info: Any) -> tuple[int, int]:
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


CHUNK_FRAMES = 64
"""Sampled frames decoded, resized and preprocessed at a time, per video.

Why: memory must not grow with the video. At ``fps`` sampling with no frame cap a 10-minute video
has 3,000 sampled frames; decoding them at once took +5.2 GB. Chunks of a video travel through
the batcher like short videos, so what is held at once is bounded by the chunk size, the encoder
batch and the DataLoader's prefetch (``2 * num_workers`` chunks).
"""


def _decode_chunks(
    item: Any,
    sampling: Any,
    seed: int,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_frames: int = CHUNK_FRAMES,
    epoch: int = 0,
) -> Iterator[dict[str, Any]]:
    """Chunk records of one video (the file is opened once); an error ends it with an error record.

    Every record carries ``video_id``, ``path``, ``error`` and ``last`` (True on the video's final
    record); records without an error also carry ``frames (t, H, W, 3)`` uint8, ``indices (t,)``
    and ``timestamps (t,)`` of that chunk; with ``preprocess`` the frames are replaced by
    ``pixels = preprocess(frames)`` ``(t, 3, S, S)``.
    """

    def choose(info: Any) -> np.ndarray:
        if not info.fps > 0:
            raise VideoDecodeError(str(item.path), f"invalid frame rate {info.fps!r}")
        first, count = clip_range(item, info)
        local = sampling.indices(count, info.fps, seed=seed, epoch=epoch, video=item.video_id)
        indices = first + np.asarray(local, dtype=np.int64)
        if indices.size == 0:
            raise VideoDecodeError(str(item.path), f"sampling {sampling.key()} chose no frames")
        return indices

    base = {"video_id": item.video_id, "path": str(item.path), "error": None}
    chunks = iter_sampled(
        item.path, choose, size=sampling.size, resize=sampling.resize, chunk_frames=chunk_frames
    )
    try:
        ahead = next(chunks)  # one chunk ahead, so that each record knows whether it is the last
        while ahead is not None:
            following = next(chunks, None)
            frames, indices, info = ahead
            frames = torch.from_numpy(np.ascontiguousarray(frames))  # (t, H, W, 3) uint8
            pixels = {"pixels": preprocess(frames)} if preprocess else {"frames": frames}
            yield {
                **base,
                **pixels,
                "indices": indices,
                "timestamps": indices / info.fps,
                "last": following is None,
            }
            ahead = following
    except VideoDecodeError as e:
        yield {**base, "path": e.path, "error": e.reason, "last": True}


class _DecodeStream(IterableDataset):
    """Chunk records of ``items``; DataLoader worker ``w`` decodes videos ``w, w + W, ...``.

    Why iterable: one item of a map-style dataset must be a whole video, which is what made
    memory grow with the video's length.
    """

    def __init__(
        self,
        items: Sequence[Any],
        sampling: Any,
        seed: int,
        preprocess: Callable | None,
        epoch: int = 0,
    ) -> None:
        self.items = list(items)
        self.sampling = sampling
        self.seed, self.epoch = seed, epoch
        self.preprocess = preprocess

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        mine = self.items if info is None else self.items[info.id :: info.num_workers]
        with torch.no_grad():
            for item in mine:
                yield from _decode_chunks(
                    item, self.sampling, self.seed, self.preprocess, epoch=self.epoch
                )


def _as_is(sample: Any) -> Any:
    """Collate function that keeps a sample untouched (module level so workers can pickle it)."""
    return sample


def _worker_init(_: int) -> None:
    # Decoding is the worker's whole job; one torch thread each avoids oversubscribing the CPU.
    torch.set_num_threads(1)


def _decode_loader(
    items: Sequence[Any],
    sampling: Any,
    seed: int,
    num_workers: int,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    epoch: int = 0,
) -> Iterator[dict]:
    """Chunk records of the videos, produced by ``num_workers`` processes (0: in this process).

    The chunks of one video arrive in order; with workers, chunks of different videos interleave.
    ``preprocess`` (workers only) turns frames into encoder pixels in the worker, off the main
    process's critical path: there the main process only encodes.
    """
    if num_workers == 0:
        return (r for item in items for r in _decode_chunks(item, sampling, seed, epoch=epoch))
    loader = DataLoader(
        _DecodeStream(items, sampling, seed, preprocess, epoch),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_as_is,
        worker_init_fn=_worker_init,
    )
    return iter(loader)


@dataclass
class _Chunk:
    video_id: str
    pixels: torch.Tensor  # (t, 3, S, S)
    done: int = 0  # frames of this chunk already encoded

    @property
    def total(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class _Video:
    record: dict[str, Any]  # video_id, path, error of its first chunk
    parts: list[torch.Tensor] = field(default_factory=list)
    indices: list[np.ndarray] = field(default_factory=list)
    timestamps: list[np.ndarray] = field(default_factory=list)
    open_chunks: int = 0  # chunks added whose frames are not all encoded
    complete: bool = False  # its last chunk was added


class _FrameBatcher:
    """Packs preprocessed chunks of videos into encoder batches of ``batch_size`` frames.

    Records are chunks (``pixels (t, 3, S, S)``, ``indices``, ``timestamps``, ``last``) of one
    video; chunks of several videos may interleave. Preprocessing happens per chunk, before
    packing, because decoded frames of different videos may differ in size. ``add`` returns the
    videos whose last chunk is added and whose frames are all encoded, each as one record with
    ``features (T, d)``; ``flush`` encodes what is left in one smaller batch.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> None:
        self.encode = encode
        self.batch_size = batch_size
        self._queue: deque[_Chunk] = deque()
        self._videos: dict[str, _Video] = {}
        self._queued = 0  # frames added but not encoded yet

    def add(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        vid = record["video_id"]
        video = self._videos.setdefault(
            vid, _Video({k: record[k] for k in ("video_id", "path", "error")})
        )
        video.indices.append(np.asarray(record["indices"]))
        video.timestamps.append(np.asarray(record["timestamps"]))
        video.complete = bool(record["last"])
        chunk = _Chunk(vid, record["pixels"])
        if chunk.total:
            video.open_chunks += 1
            self._queue.append(chunk)
            self._queued += chunk.total
        finished = self._take_finished([vid])
        while self._queued >= self.batch_size:
            finished += self._encode_next(self.batch_size)
        return finished

    def discard(self, video_id: str) -> None:
        """Forget a video whose decoding failed after some of its chunks were added."""
        if self._videos.pop(video_id, None) is None:
            return
        for chunk in [c for c in self._queue if c.video_id == video_id]:
            self._queue.remove(chunk)
            self._queued -= chunk.total - chunk.done

    def flush(self) -> list[dict[str, Any]]:
        return self._encode_next(self._queued) if self._queued else []

    def _encode_next(self, n: int) -> list[dict[str, Any]]:
        pieces, owners, taken = [], [], 0
        for c in self._queue:
            take = min(n - taken, c.total - c.done)
            pieces.append(c.pixels[c.done : c.done + take])
            owners.append((c, take))
            taken += take
            if taken == n:
                break
        out = self.encode(torch.cat(pieces))  # (n, 3, S, S) -> (n, d)
        touched = []
        for (c, take), feats in zip(owners, out.split([t for _, t in owners]), strict=True):
            video = self._videos[c.video_id]
            video.parts.append(feats)
            c.done += take
            if c.done == c.total:
                video.open_chunks -= 1
                touched.append(c.video_id)
        self._queued -= n
        while self._queue and self._queue[0].done == self._queue[0].total:
            self._queue.popleft()
        return self._take_finished(touched)

    def _take_finished(self, video_ids: list[str]) -> list[dict[str, Any]]:
        finished = []
        for vid in dict.fromkeys(video_ids):
            video = self._videos.get(vid)
            if video is None or not video.complete or video.open_chunks:
                continue
            del self._videos[vid]
            finished.append(
                {
                    **video.record,
                    "features": torch.cat(video.parts),  # (T, d)
                    "indices": np.concatenate(video.indices),
                    "timestamps": np.concatenate(video.timestamps),
                }
            )
        return finished


def _preprocess(encoder: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Replace a record's uint8 ``frames (T, H, W, 3)`` by ``pixels (T, 3, S, S)`` for the encoder."""
    if "frames" not in record:  # preprocessed in a decoding worker
        return record
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
