"""The reader interface every decoding backend implements, its registry, and its errors.

Why: decord and PyAV differ in how they open, index and seek, but the rest of vrlib only needs
"open a file, how many frames, decode these indices"; :class:`VideoReader` is that contract and
:data:`BACKENDS` lists the implementations (one module each) in the order they are tried.
"""

from __future__ import annotations

import importlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vrlib.registry import Registry

#: Decoding threads per reader. One: parallelism comes from DataLoader worker processes (one per
#: core), and the machines this runs on are shared; more threads per reader oversubscribe them.
DECODE_THREADS = 1

#: Fraction of the header's frame count that may be missing before a file counts as truncated.
TRUNCATION_TOLERANCE = 0.01


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
    """What :func:`probe` found. ``num_frames`` counts frames present in the file (package doc);
    ``claimed_frames`` is the count the container header states (0: the header does not say)."""

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    claimed_frames: int = 0

    def truncation(self) -> str | None:
        """Why the file looks truncated (fewer frames present than the header claims), or None.

        A shortfall of up to :data:`TRUNCATION_TOLERANCE` of the claim (at least 2 frames) is
        accepted: edit lists and muxers' rounding make the two counts differ slightly in whole files.
        """
        missing = self.claimed_frames - self.num_frames
        if missing <= max(2, int(TRUNCATION_TOLERANCE * self.claimed_frames)):
            return None
        return (
            f"truncated: {self.num_frames} of the {self.claimed_frames} frames the container "
            f"header claims are in the file"
        )


class VideoReader(ABC):
    """One open video file. Subclasses raise :class:`VideoDecodeError` from ``__init__`` when the
    file cannot be opened, and from :meth:`read` when requested frames do not decode."""

    name: ClassVar[str]
    module: ClassVar[str]  # the Python module the backend needs
    priority: ClassVar[int]  # lower is tried first when no backend is forced
    #: Longer files go to the next backend when none is forced (see ``decord_reader``).
    max_frames: ClassVar[float] = float("inf")
    num_frames: int  # frames present in the file, known once open (package doc)

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


def short_message(message: object, limit: int = 240) -> str:
    """One readable line from a native error message (drops log prefixes and stack lines)."""
    text = re.sub(r"\[\d\d:\d\d:\d\d\] \S+?\.(?:cc|h|cpp):\d+: ", "", str(message))
    line = next((s.strip() for s in text.splitlines() if s.strip()), type(message).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def preview_indices(values: np.ndarray, limit: int = 8) -> str:
    items = [int(v) for v in np.asarray(values).ravel()]
    head = ", ".join(map(str, items[:limit]))
    return f"[{head}{', ...' if len(items) > limit else ''}]"
