"""Which frames of a video to decode: one function per sampling strategy, looked up by name.

Every strategy maps ``(num_frames, fps, parameters)`` to 0-based frame indices (int64, in
``[0, num_frames)``), which :func:`vrlib.data.video.read_frames` then decodes. Strategies:

- ``uniform``: the centre frame of each of ``n`` equal segments, index ``floor((k + 1/2) N / n)``
  (exact integer arithmetic). Frozen in Time's test-time rule at offset 1/2. In a video shorter
  than ``n`` frames it repeats frames (below), so adjacent samples can be the same frame and
  a temporal difference (CLIP2Video's TDB) is exactly zero there: use ``clip4clip`` or
  ``clip2video`` (pad and mask) where that matters.
- ``clip4clip``: CLIP4Clip's protocol (``rawvideo_util.py`` + ``slice_framepos=2``): one frame
  per second (``target_fps``, default 1) from t = 0, then, when that gives more than ``n``,
  ``np.linspace(0, count - 1, n, dtype=int)`` of them (endpoint included: the first and the
  last one-per-second frame are always kept). Short videos give fewer than ``n`` frames, never
  a repeat; the feature pipeline pads and masks them. (CLIP4Clip steps by ``int(fps)``
  frames, which drifts for 29.97 fps videos; here the frame at time ``j / target_fps`` is taken.)
- ``clip2video``: CLIP2Video's protocol (``sample_frame.py`` + ``rawframe_util.py``,
  ``feature_framerate=2``): the frames dumped at 5 fps (``ffmpeg -r 5``, here the frame at
  time ``j / 5``), every second of them (``linspace(0, M - 1, M // 2, dtype=int)``), then
  ``linspace`` to ``n`` as ``clip4clip``. No repeats; short videos are padded and masked.
  (Its random jitter at training time is not reproduced.)
- ``single``: one frame at ``at_seconds``: the ``round(at_seconds * fps)``-th frame counted from
  1, i.e. index ``round(at_seconds * fps) - 1`` (at least 0): at 30 fps and 1.0 s that is index 29,
  the 30th frame ``W_30`` of Portillo-Quintero et al. 2021. Clamped to the last frame for videos
  shorter than ``at_seconds``.
- ``segment_random``: one frame drawn uniformly inside each of ``n`` equal segments (TSN-style
  training sampling, as in Frozen in Time). Seeded by ``(seed, epoch, video)``, so a training
  run draws new frames every epoch, different per video, and the same ones when rerun;
  ``seed=None`` draws fresh entropy (not reproducible).
- ``stride``: index ``floor((k + offset) N / n)``, the frame at fraction ``offset`` in ``[0, 1)``
  of each segment; ``offset=0.5`` equals ``uniform``. :func:`stride_offsets` gives the offsets
  of Frozen in Time's test-time averaging (embed the video at each, average the embeddings:
  ``vrlib.aggregate.average_over_offsets``).
- ``double_rate``: ``uniform`` with ``2n`` frames. NOT CLIP2Video's TAB input: the paper
  ("re-sample ... sparsely", ``{f^0, f^2, ...}``) and its code take every second of the ``n``
  frames (``TDBTAB`` does that itself); this is for the literal "double frame rate" reading.
- ``fps``: one frame every ``1 / target_fps`` seconds from t = 0 (index ``floor(j * fps /
  target_fps)``); ``target_fps`` above the video's rate gives every frame once. With
  ``max_frames``, more frames than that are thinned by the ``uniform`` rule.
- ``all``: every frame (also thinned by ``max_frames`` when set).

Short videos (``num_frames < n``)
    Never an error. ``uniform``, ``stride``, ``segment_random`` and ``double_rate`` repeat frames
    in order (segments shorter than one frame share a frame), e.g. ``uniform`` with N=3, n=12
    gives ``[0,0,0,0,1,1,1,1,2,2,2,2]``: every video of a batch has the same ``T`` (``2n`` for
    ``double_rate``). ``clip4clip``, ``clip2video``, ``fps`` and ``all`` never repeat a frame
    and may return fewer than ``n`` indices.

Every strategy but ``segment_random`` depends only on its own arguments; all strategies return
sorted (non-decreasing) indices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from vrlib.data.video import RESIZE_MODES
from vrlib.registry import Registry


@dataclass(frozen=True)
class SampleRequest:
    """Everything a sampler may read; each strategy uses the fields it needs."""

    num_frames: int
    fps: float
    n: int
    at_seconds: float
    seed: int | None
    offset: float
    target_fps: float
    max_frames: int | None
    epoch: int = 0
    video: str | None = None


Sampler = Callable[[SampleRequest], np.ndarray]
SAMPLERS: Registry[Sampler] = Registry("frame sampling strategy")


def _centres(num_frames: int, n: int) -> np.ndarray:
    """``floor((k + 1/2) * num_frames / n)`` for k < n, in exact integer arithmetic."""
    k = np.arange(n, dtype=np.int64)
    return (2 * k + 1) * num_frames // (2 * n)


def _thin(indices: np.ndarray, max_frames: int | None) -> np.ndarray:
    """Keep at most ``max_frames`` of ``indices`` by the uniform (segment centre) rule."""
    if max_frames is None or len(indices) <= max_frames:
        return indices
    return indices[_centres(len(indices), max_frames)]


def _linspace_thin(indices: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``indices``, endpoints kept: CLIP4Clip's and CLIP2Video's rule, verbatim
    (``np.linspace(..., dtype=int)``, so the rounding is theirs)."""
    if len(indices) <= n:
        return indices
    return indices[np.linspace(0, len(indices) - 1, num=n, dtype=int)]


def _at_rate(num_frames: int, fps: float, target_fps: float) -> np.ndarray:
    """One frame every ``1 / target_fps`` seconds from t = 0, each frame at most once."""
    step = fps / min(target_fps, fps)  # frames between samples, >= 1
    count = math.ceil(num_frames / step - 1e-9)
    idx = np.floor(np.arange(count) * step + 1e-9).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def _need_fps(r: SampleRequest, strategy: str) -> None:
    if not (math.isfinite(r.fps) and r.fps > 0):
        raise ValueError(f"strategy {strategy!r} needs the video's frame rate; got fps={r.fps!r}")


@SAMPLERS.register("uniform")
def uniform(r: SampleRequest) -> np.ndarray:
    return _centres(r.num_frames, r.n)


@SAMPLERS.register("clip4clip")
def clip4clip(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "clip4clip")
    return _linspace_thin(_at_rate(r.num_frames, r.fps, r.target_fps), r.n)


CLIP2VIDEO_DUMP_FPS = 5.0  # sample_frame.py: ffmpeg -r 5
CLIP2VIDEO_KEEP_EVERY = 2  # feature_framerate 2: every second dumped frame


@SAMPLERS.register("clip2video")
def clip2video(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "clip2video")
    dumped = _at_rate(r.num_frames, r.fps, CLIP2VIDEO_DUMP_FPS)
    keep = max(len(dumped) // CLIP2VIDEO_KEEP_EVERY, 1)  # CLIP2Video would keep none of 1
    kept = dumped[np.linspace(0, len(dumped) - 1, num=keep, dtype=int)]
    return _linspace_thin(kept, r.n)


@SAMPLERS.register("double_rate")
def double_rate(r: SampleRequest) -> np.ndarray:
    return _centres(r.num_frames, 2 * r.n)


@SAMPLERS.register("stride")
def stride(r: SampleRequest) -> np.ndarray:
    k = np.arange(r.n, dtype=np.float64)
    # + 1e-9: (8 + 0.2) * 120 / 12 is 81.999... in floats, and frame 82 is meant
    idx = np.floor((k + r.offset) * r.num_frames / r.n + 1e-9).astype(np.int64)
    return np.minimum(idx, r.num_frames - 1)


EPOCH_DEPENDENT = ("segment_random",)  # strategies that read ``epoch``


@SAMPLERS.register("segment_random")
def segment_random(r: SampleRequest) -> np.ndarray:
    k = np.arange(r.n + 1, dtype=np.int64)
    bounds = k * r.num_frames // r.n  # segment k is [bounds[k], bounds[k+1])
    lo = np.minimum(bounds[:-1], r.num_frames - 1)
    width = np.maximum(bounds[1:] - bounds[:-1], 1)  # empty segments (N < n) repeat lo
    return lo + _epoch_rng(r).integers(0, width)


def _epoch_rng(r: SampleRequest) -> np.random.Generator:
    """A generator seeded by (seed, epoch, video); fresh entropy when ``seed`` is None."""
    if r.seed is None:
        return np.random.default_rng()
    video = int.from_bytes(hashlib.sha256(str(r.video).encode()).digest()[:8], "little")
    return np.random.default_rng([int(r.seed), int(r.epoch), video])


@SAMPLERS.register("single")
def single(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "single")
    idx = max(round(r.at_seconds * r.fps) - 1, 0)
    return np.array([min(idx, r.num_frames - 1)], dtype=np.int64)


@SAMPLERS.register("fps")
def fps(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "fps")
    return _thin(_at_rate(r.num_frames, r.fps, r.target_fps), r.max_frames)


@SAMPLERS.register("all")
def all_frames(r: SampleRequest) -> np.ndarray:
    return _thin(np.arange(r.num_frames, dtype=np.int64), r.max_frames)


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_strategy(strategy: str) -> None:
    if strategy not in SAMPLERS:
        raise ValueError(
            f"unknown sampling strategy {strategy!r}; valid: {', '.join(SAMPLERS.names())}"
        )


def _check_params(
    n: int, at_seconds: float, offset: float, target_fps: float, max_frames: int | None
) -> None:
    _check_int("n", n, 1)
    if not (math.isfinite(at_seconds) and at_seconds >= 0):
        raise ValueError(f"at_seconds must be a finite number >= 0, got {at_seconds!r}")
    if not 0.0 <= offset < 1.0:
        raise ValueError(f"offset must be in [0, 1), got {offset!r}")
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"target_fps must be a finite number > 0, got {target_fps!r}")
    if max_frames is not None:
        _check_int("max_frames", max_frames, 1)


def frame_indices(
    num_frames: int,
    fps: float,
    strategy: str = "uniform",
    n: int = 12,
    *,
    at_seconds: float = 1.0,
    seed: int | None = None,
    epoch: int = 0,
    video: str | None = None,
    offset: float = 0.5,
    target_fps: float = 1.0,
    max_frames: int | None = None,
) -> np.ndarray:
    """Frame indices to decode from a video of ``num_frames`` frames at ``fps``.

    Args:
        num_frames: frames in the video (``VideoInfo.num_frames``), >= 1.
        fps: the video's frame rate; ``single``, ``fps``, ``clip4clip`` and ``clip2video`` use it.
        strategy: a name in :data:`SAMPLERS` (module doc).
        n: frames per video for the segment strategies (``2n`` for ``double_rate``), the most
            frames for ``clip4clip`` and ``clip2video``.
        at_seconds: time of the ``single`` frame.
        seed: run seed of ``segment_random`` (>= 0; None: fresh entropy).
        epoch: training epoch, for ``segment_random`` (new frames each epoch).
        video: the video's id, for ``segment_random`` (different frames per video).
        offset: fraction of each segment for ``stride``, in ``[0, 1)``.
        target_fps: sampling rate of ``fps`` and ``clip4clip``.
        max_frames: cap for ``fps`` and ``all`` (uniform thinning).

    Returns:
        int64 array of indices in ``[0, num_frames)``, sorted; repeats only where the module
        docstring says (short videos under the segment strategies).

    Raises:
        ValueError: ``num_frames`` < 1, an unknown strategy (message lists the valid ones), or a
            parameter out of range (message names it).
    """
    _check_strategy(strategy)
    num_frames = _check_int("num_frames", num_frames, 1)
    _check_params(n, at_seconds, offset, target_fps, max_frames)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    epoch = _check_int("epoch", epoch, 0)
    if video is not None and not isinstance(video, str):
        raise ValueError(f"video must be a str id or None, got {video!r}")
    fps = float("nan") if fps is None else float(fps)
    request = SampleRequest(
        num_frames, fps, int(n), at_seconds, seed, offset, target_fps, max_frames, epoch, video
    )
    return np.asarray(SAMPLERS.get(strategy)(request), dtype=np.int64)


@dataclass(frozen=True)
class SamplingConfig:
    """Which frames to decode and at what size: part of the feature cache key.

    ``size``/``resize`` are passed to :func:`vrlib.data.video.read_frames`; ``resize="square"``
    (short side to ``size``, centre crop) is the default here because encoders take square input.
    """

    strategy: str = "uniform"
    n: int = 12
    at_seconds: float = 1.0
    offset: float = 0.5
    target_fps: float = 1.0
    max_frames: int | None = None
    size: int | None = None
    resize: str = "square"

    def __post_init__(self) -> None:
        _check_strategy(self.strategy)
        # Normalise numbers so that 1 and 1.0 give the same key.
        for name in ("at_seconds", "offset", "target_fps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        _check_params(self.n, self.at_seconds, self.offset, self.target_fps, self.max_frames)
        object.__setattr__(self, "n", int(self.n))
        if self.max_frames is not None:
            object.__setattr__(self, "max_frames", int(self.max_frames))
        if self.size is not None:
            object.__setattr__(self, "size", _check_int("size", self.size, 1))
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize {self.resize!r}; valid: {', '.join(RESIZE_MODES)}")

    @property
    def varies_by_epoch(self) -> bool:
        """True when the frames change with the epoch (then features are extracted per epoch)."""
        return self.strategy in EPOCH_DEPENDENT

    def indices(
        self,
        num_frames: int,
        fps: float,
        seed: int | None = None,
        epoch: int = 0,
        video: str | None = None,
    ) -> np.ndarray:
        """:func:`frame_indices` with this configuration."""
        return frame_indices(
            num_frames,
            fps,
            self.strategy,
            self.n,
            at_seconds=self.at_seconds,
            seed=seed,
            epoch=epoch,
            video=video,
            offset=self.offset,
            target_fps=self.target_fps,
            max_frames=self.max_frames,
        )

    def key(self) -> str:
        """Stable text of every field, e.g. ``strategy='uniform',n=12,...,resize='square'``."""
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


def stride_offsets(count: int) -> list[float]:
    """Offsets of Frozen in Time's test-time averaging: ``count`` evenly spaced in each segment.

    The paper embeds a video with the i-th frame of every segment for i = 0, S, 2S, ... and
    averages the embeddings. As fractions of a segment, that is ``j / count`` for j < count
    (S = segment length / count); ``count=1`` is the first frame of each segment. Sample each
    with ``SamplingConfig(strategy="stride", offset=o)`` (one feature cache entry per offset)
    and average with ``vrlib.aggregate.average_over_offsets``.
    """
    count = _check_int("count", count, 1)
    return [j / count for j in range(count)]


def stride_offset_indices(num_frames: int, n: int, count: int) -> list[np.ndarray]:
    """The index set of each offset of :func:`stride_offsets`: ``count`` arrays of ``n`` indices."""
    return [frame_indices(num_frames, None, "stride", n, offset=o) for o in stride_offsets(count)]
