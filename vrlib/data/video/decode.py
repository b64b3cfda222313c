"""Public decoding functions: :func:`probe`, :func:`read_frames`, :func:`read_sampled`,
:func:`iter_sampled`.

Why: they choose a backend (or take the forced one), check the file and the indices before any
decoder runs, decode each distinct frame once, fall back to PyAV when decord opens a file it
then cannot decode, and resize; callers never see a backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from vrlib.data.video.pyav_reader import PyAVReader
from vrlib.data.video.reader import (
    BACKENDS,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    preview_indices,
)
from vrlib.data.video.resize import check_resize, resize_frames

log = logging.getLogger(__name__)


def available_backends() -> list[str]:
    """Installed backends, in the order they are tried (decord first)."""
    order = sorted(BACKENDS.names(), key=lambda name: BACKENDS.get(name).priority)
    return [name for name in order if BACKENDS.get(name).available()]


def _check_file(path: str) -> None:
    """Problems visible without a decoder, reported before any backend prints anything."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


def _open(path: str | os.PathLike, backend: str | None) -> VideoReader:
    """Open with ``backend``, or with the first installed backend that can open the file and
    reads files that long (``VideoReader.max_frames``: decord gives way to PyAV past 10,000)."""
    path = os.fspath(path)
    if backend is not None:
        cls = BACKENDS.get(backend)
        if not cls.available():
            raise RuntimeError(
                f"video backend {backend!r} is not installed; installed: {available_backends()}"
            )
        _check_file(path)
        return cls(path)
    names = available_backends()
    if not names:
        raise RuntimeError(f"no video backend installed; install one of {BACKENDS.names()}")
    _check_file(path)
    errors, too_long = [], None
    for name in names:
        try:
            reader = BACKENDS.get(name)(path)
        except VideoDecodeError as e:
            log.debug("%s: %s failed to open (%s), trying the next backend", path, name, e.reason)
            errors.append(e.reason)
            continue
        if reader.num_frames <= reader.max_frames or name == names[-1]:
            if too_long is not None:
                too_long.close()
            return reader
        log.debug(
            "%s: %d frames, too long for %s; trying the next backend", path, reader.num_frames, name
        )
        if too_long is None:
            too_long = reader  # still better than nothing if no other backend opens the file
        else:
            reader.close()
    if too_long is not None:
        return too_long
    raise VideoDecodeError(path, "; ".join(errors))


def probe(path: str | os.PathLike, backend: str | None = None) -> VideoInfo:
    """Frame count, frame rate, duration and size of a video (see the package doc for the rules).

    Args:
        path: the video file.
        backend: ``"decord"`` or ``"pyav"`` to force one; None tries them in order.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, or has no frames.
    """
    with _open(path, backend) as reader:
        return reader.info()


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray,
    size: int | None = None,
    resize: str = "short_side",
    backend: str | None = None,
) -> np.ndarray:
    """Decode the frames at ``indices`` (presentation order, 0-based) as RGB.

    Each distinct frame is decoded once, in file order; the result follows the order of
    ``indices``, repeats included (the sampling rule for short videos repeats frames).

    Args:
        path: the video file.
        indices: 1-D integer frame indices in ``[0, num_frames)``.
        size: None keeps the native size; otherwise see :func:`resize_frames`.
        resize: ``"short_side"`` or ``"square"`` (see :func:`resize_frames`).
        backend: ``"decord"`` or ``"pyav"`` to force one; None tries them in order.

    Returns:
        uint8 array ``(T, H, W, 3)`` with ``T == len(indices)``.

    Raises:
        VideoDecodeError: bad file, indices outside ``[0, num_frames)``, or frames that do not decode.
        ValueError: indices that are not a 1-D integer array, or a bad ``size`` / ``resize``.
    """
    idx = _as_indices(indices)
    check_resize(size, resize)
    with _open(path, backend) as reader:
        return _decode(reader, idx, size, resize, forced=backend is not None)


def read_sampled(
    path: str | os.PathLike,
    choose: Callable[[VideoInfo], Sequence[int] | np.ndarray],
    size: int | None = None,
    resize: str = "short_side",
    backend: str | None = None,
    allow_truncated: bool = False,
) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Open a video once, let ``choose(info)`` pick frame indices, and decode them.

    Why: feature extraction needs the frame count and rate to pick indices; ``probe`` followed by
    ``read_frames`` opens (and, for decord, indexes) the file twice. Errors are those of
    :func:`read_frames`, plus whatever ``choose`` raises, plus a :class:`VideoDecodeError` for a
    file holding fewer frames than its header claims (:meth:`VideoInfo.truncation`) unless
    ``allow_truncated``: sampling would spread the frames over the part that survived, and the
    captions describe the whole video. All frames are returned at once: for long videos sampled
    densely, :func:`iter_sampled` keeps memory bounded.

    Returns:
        ``(frames (T, H, W, 3) uint8, indices (T,) int64, info)``.
    """
    chunks = list(
        iter_sampled(path, choose, size, resize, backend, None, allow_truncated=allow_truncated)
    )
    info = chunks[0][2]
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]), info


def iter_sampled(
    path: str | os.PathLike,
    choose: Callable[[VideoInfo], Sequence[int] | np.ndarray],
    size: int | None = None,
    resize: str = "short_side",
    backend: str | None = None,
    chunk_frames: int | None = 64,
    allow_truncated: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, VideoInfo]]:
    """:func:`read_sampled` in chunks of at most ``chunk_frames`` indices, decoded and resized.

    Why: at ``fps`` sampling without a frame cap a 10-minute video has thousands of sampled
    frames; decoding and resizing them at once took gigabytes (the float32 resize buffer of
    every native frame). Chunk by chunk, memory depends on ``chunk_frames``, not on the video.

    Args:
        chunk_frames: indices per chunk; None: one chunk with all of them.
        allow_truncated: decode a file shorter than its header claims instead of raising
            (see :func:`read_sampled`).

    Yields:
        ``(frames (t, H, W, 3) uint8, indices (t,) int64, info)`` in the order of the chosen
        indices; at least one chunk (an empty one when no index was chosen).
    """
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1 or None, got {chunk_frames}")
    check_resize(size, resize)
    with _open(path, backend) as reader:
        info = reader.info()
        if not allow_truncated and (problem := info.truncation()):
            raise VideoDecodeError(reader.path, problem)
        idx = _as_indices(choose(info))
        _check_range(reader, idx)  # all indices, before the first chunk is decoded
        step = chunk_frames or max(idx.size, 1)
        for start in range(0, max(idx.size, 1), step):
            part = idx[start : start + step]
            yield _decode(reader, part, size, resize, forced=backend is not None), part, info


def _decode(
    reader: VideoReader, idx: np.ndarray, size: int | None, resize: str, forced: bool
) -> np.ndarray:
    """Check ``idx`` against the open file, decode each distinct frame once, resize, reorder."""
    _check_range(reader, idx)
    if idx.size == 0:
        info = reader.info()
        empty = np.zeros((0, info.height, info.width, 3), dtype=np.uint8)
        return resize_frames(empty, size, resize)
    unique, inverse = np.unique(idx, return_inverse=True)
    try:
        frames = reader.read(unique)  # (U, H, W, 3)
    except VideoDecodeError as err:
        if forced or isinstance(reader, PyAVReader) or not PyAVReader.available():
            raise
        # decord opens some valid H.264 files it then fails to decode (seen on 48x48 and
        # 96x96 libx264 encodes: "Check failed: from_size == to_size"), or returns earlier
        # frames when a seek gives up (decord_reader, "Long files"); PyAV decodes them.
        log.debug("%s: decord failed to decode (%s), retrying with pyav", reader.path, err.reason)
        frames = _read_with_pyav(reader.path, unique, err)
    return resize_frames(frames, size, resize)[inverse]  # (T, H', W', 3)


def _check_range(reader: VideoReader, idx: np.ndarray) -> None:
    num_frames = reader.num_frames
    bad = idx[(idx < 0) | (idx >= num_frames)]
    if bad.size:
        raise VideoDecodeError(
            reader.path,
            f"frame indices {preview_indices(bad)} out of range [0, {num_frames}) "
            f"({num_frames} frames in the file)",
        )


def _read_with_pyav(
    path: str | os.PathLike, unique: np.ndarray, first: VideoDecodeError
) -> np.ndarray:
    """Second try with PyAV; if it fails too, the error names both backends' reasons."""
    try:
        with PyAVReader(os.fspath(path)) as reader:
            return reader.read(unique)
    except VideoDecodeError as err:
        raise VideoDecodeError(err.path, f"decord: {first.reason}; pyav: {err.reason}") from None


def _as_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"frame indices must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"frame indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)
