"""Which frames of a video to decode: one function per sampling strategy, looked up by name.

Every strategy maps ``(num_frames, fps, parameters)`` to 0-based frame indices (int64, in
``[0, num_frames)``), which :func:`vrlib.data.video.read_frames` then decodes. Strategies:

- ``uniform``: the centre frame of each of ``n`` equal segments, index ``floor((k + 1/2) N / n)``
  (exact integer arithmetic). The inference standard (CLIP4Clip, Frozen in Time's test time).
- ``single``: one frame at ``at_seconds``: the ``round(at_seconds * fps)``-th frame counted from
  1, i.e. index ``round(at_seconds * fps) - 1`` (at least 0): at 30 fps and 1.0 s that is index 29,
  the 30th frame ``W_30`` of Portillo-Quintero et al. 2021. Clamped to the last frame for videos
  shorter than ``at_seconds``.
- ``segment_random``: one frame drawn uniformly inside each of ``n`` equal segments (TSN-style
  training sampling, as in Frozen in Time); seeded with ``numpy.random.default_rng(seed)``;
  ``seed=None`` draws fresh entropy (not reproducible).
- ``stride``: Frozen in Time's test-time offsets: index ``floor((k + offset) N / n)``, the frame at
  fraction ``offset`` in ``[0, 1)`` of each segment; ``offset=0.5`` equals ``uniform``.
- ``double_rate``: ``uniform`` with ``2n`` frames, CLIP2Video's double frame rate input to TAB.
- ``fps``: one frame every ``1 / target_fps`` seconds from t = 0 (index ``floor(j * fps /
  target_fps)``); ``target_fps`` above the video's rate gives every frame once. With
  ``max_frames``, more frames than that are thinned by the ``uniform`` rule.
- ``all``: every frame (also thinned by ``max_frames`` when set).

Short videos (``num_frames < n``)
    Never an error: segments shorter than one frame share a frame, so frames repeat in order, e.g.
    ``uniform`` with N=3, n=12 gives ``[0,0,0,0,1,1,1,1,2,2,2,2]``. The output always has ``n``
    indices (``2n`` for ``double_rate``), so every video of a batch has the same ``T``.

Indices of ``uniform``, ``single``, ``stride``, ``double_rate``, ``fps`` and ``all`` depend only on
their arguments; all strategies return sorted (non-decreasing) indices.
"""

from __future__ import annotations

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


def _need_fps(r: SampleRequest, strategy: str) -> None:
    if not (math.isfinite(r.fps) and r.fps > 0):
        raise ValueError(f"strategy {strategy!r} needs the video's frame rate; got fps={r.fps!r}")


@SAMPLERS.register("uniform")
def uniform(r: SampleRequest) -> np.ndarray:
    return _centres(r.num_frames, r.n)


@SAMPLERS.register("double_rate")
def double_rate(r: SampleRequest) -> np.ndarray:
    return _centres(r.num_frames, 2 * r.n)


@SAMPLERS.register("stride")
def stride(r: SampleRequest) -> np.ndarray:
    k = np.arange(r.n, dtype=np.float64)
    idx = np.floor((k + r.offset) * r.num_frames / r.n).astype(np.int64)
    return np.minimum(idx, r.num_frames - 1)


@SAMPLERS.register("segment_random")
def segment_random(r: SampleRequest) -> np.ndarray:
    k = np.arange(r.n + 1, dtype=np.int64)
    bounds = k * r.num_frames // r.n  # segment k is [bounds[k], bounds[k+1])
    lo = np.minimum(bounds[:-1], r.num_frames - 1)
    width = np.maximum(bounds[1:] - bounds[:-1], 1)  # empty segments (N < n) repeat lo
    rng = np.random.default_rng(r.seed)
    return lo + rng.integers(0, width)


@SAMPLERS.register("single")
def single(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "single")
    idx = max(round(r.at_seconds * r.fps) - 1, 0)
    return np.array([min(idx, r.num_frames - 1)], dtype=np.int64)


@SAMPLERS.register("fps")
def fps(r: SampleRequest) -> np.ndarray:
    _need_fps(r, "fps")
    step = r.fps / min(r.target_fps, r.fps)  # frames between samples, >= 1
    count = math.ceil(r.num_frames / step - 1e-9)
    idx = np.floor(np.arange(count) * step + 1e-9).astype(np.int64)
    return _thin(np.minimum(idx, r.num_frames - 1), r.max_frames)


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
    offset: float = 0.5,
    target_fps: float = 1.0,
    max_frames: int | None = None,
) -> np.ndarray:
    """Frame indices to decode from a video of ``num_frames`` frames at ``fps``.

    Args:
        num_frames: frames in the video (``VideoInfo.num_frames``), >= 1.
        fps: the video's frame rate; only ``single`` and ``fps`` use it.
        strategy: a name in :data:`SAMPLERS` (module doc).
        n: frames per video for the segment strategies (``2n`` for ``double_rate``).
        at_seconds: time of the ``single`` frame.
        seed: seed of ``segment_random``.
        offset: fraction of each segment for ``stride``, in ``[0, 1)``.
        target_fps: sampling rate of ``fps``.
        max_frames: cap for ``fps`` and ``all`` (uniform thinning).

    Returns:
        int64 array of indices in ``[0, num_frames)``, sorted, repeats allowed for short videos.

    Raises:
        ValueError: ``num_frames`` < 1, an unknown strategy (message lists the valid ones), or a
            parameter out of range (message names it).
    """
    _check_strategy(strategy)
    num_frames = _check_int("num_frames", num_frames, 1)
    _check_params(n, at_seconds, offset, target_fps, max_frames)
    fps = float("nan") if fps is None else float(fps)
    request = SampleRequest(
        num_frames, fps, int(n), at_seconds, seed, offset, target_fps, max_frames
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

    def indices(self, num_frames: int, fps: float, seed: int | None = None) -> np.ndarray:
        """:func:`frame_indices` with this configuration."""
        return frame_indices(
            num_frames,
            fps,
            self.strategy,
            self.n,
            at_seconds=self.at_seconds,
            seed=seed,
            offset=self.offset,
            target_fps=self.target_fps,
            max_frames=self.max_frames,
        )

    def key(self) -> str:
        """Stable text of every field, e.g. ``strategy='uniform',n=12,...,resize='square'``."""
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
