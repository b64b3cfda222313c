"""The dataset model and the registry: what every reader returns and how it is loaded.

Why: a dataset is reduced to plain data, a list of videos (id, path, optional segment) and a
list of captions (video id, text, tags), so every study runs the same pipeline on the synthetic
world and on real benchmarks. :func:`load_dataset` looks a reader up in :data:`DATASETS`, checks
that every video file is there and builds the :class:`RetrievalDataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vrlib.registry import Registry

MAX_LISTED = 5  # missing videos named in one error message


class DatasetError(ValueError):
    """Bad dataset input: unknown split, malformed annotation row, inconsistent ids."""


class MissingAnnotationError(DatasetError, FileNotFoundError):
    """An annotation file the dataset/split needs is absent; the message lists every expected file."""


class MissingVideoError(DatasetError, FileNotFoundError):
    """Videos referenced by the annotations are missing or empty (``on_error="raise"``)."""


@dataclass(frozen=True)
class VideoItem:
    """One video to embed.

    ``start``/``end`` (seconds) select a segment of the file; ``None`` means the whole file (the
    usual case: benchmark clips are distributed already cut). ``meta`` carries whatever else the
    annotations say (durations, source-video times, synthetic events); it is not hashed.
    """

    video_id: str
    path: Path
    start: float | None = None
    end: float | None = None
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class CaptionItem:
    """One caption (query) and the id of the video it describes."""

    video_id: str
    text: str
    tags: tuple[str, ...] = ()


@dataclass
class RetrievalDataset:
    """Videos, captions and the caption -> video map that every metric takes.

    ``caption_to_video`` (int64, shape (C,)) and ``video_index`` are computed once, at
    construction, from ``captions`` and ``videos``; build a new dataset rather than mutating
    the lists. ``skipped`` lists ``(video_id, reason)`` for videos dropped with
    ``on_error="skip"`` so that reports can say what was left out.
    """

    name: str
    split: str
    root: Path
    videos: list[VideoItem]
    captions: list[CaptionItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    video_index: dict[str, int] = field(init=False, repr=False, compare=False)
    caption_to_video: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.video_index = {}
        for i, v in enumerate(self.videos):
            if v.video_id in self.video_index:
                raise DatasetError(
                    f"{self.name}/{self.split}: video id {v.video_id!r} listed twice"
                )
            self.video_index[v.video_id] = i
        unknown = [c.video_id for c in self.captions if c.video_id not in self.video_index]
        if unknown:
            raise DatasetError(
                f"{self.name}/{self.split}: {len(unknown)} captions refer to videos not in the "
                f"dataset, e.g. {sorted(set(unknown))[:MAX_LISTED]}"
            )
        self.caption_to_video = np.fromiter(
            (self.video_index[c.video_id] for c in self.captions),
            dtype=np.int64,
            count=len(self.captions),
        )

    def one_caption_indices(self, seed: int = 0) -> np.ndarray:
        """Indices of one caption per video (in video order), drawn with ``seed``.

        Why: the 1k-A-style protocol pairs each video with a single query; drawing with a
        seed keeps the subset reproducible. Videos without captions get none.
        """
        rng = np.random.default_rng(seed)
        per_video: dict[int, list[int]] = {}
        for ci, vi in enumerate(self.caption_to_video.tolist()):
            per_video.setdefault(vi, []).append(ci)
        keep = [int(rng.choice(per_video[vi])) for vi in range(len(self.videos)) if vi in per_video]
        return np.asarray(keep, dtype=np.int64)

    def subset_one_caption_per_video(self, seed: int = 0) -> RetrievalDataset:
        """Keep one caption per video, drawn with ``seed`` (videos without captions are kept)."""
        keep = self.one_caption_indices(seed)
        return RetrievalDataset(
            name=self.name,
            split=self.split,
            root=self.root,
            videos=list(self.videos),
            captions=[self.captions[i] for i in keep],
            skipped=list(self.skipped),
        )

    def drop_videos(self, failed: list[tuple[str, str]]) -> RetrievalDataset:
        """A copy without the videos in ``failed`` (``(video_id, reason)``) and their captions.

        Why: a video that exists but cannot be decoded is found only at extraction time; it
        leaves the dataset the same way a missing file does, recorded in ``skipped``.
        """
        gone = {vid for vid, _ in failed}
        return RetrievalDataset(
            name=self.name,
            split=self.split,
            root=self.root,
            videos=[v for v in self.videos if v.video_id not in gone],
            captions=[c for c in self.captions if c.video_id not in gone],
            skipped=list(self.skipped) + [f for f in failed if f[0] in self.video_index],
        )

    def __repr__(self) -> str:
        return (
            f"RetrievalDataset(name={self.name!r}, split={self.split!r}, videos={len(self.videos)}, "
            f"captions={len(self.captions)}, skipped={len(self.skipped)}, root='{self.root}')"
        )


Items = tuple[list[VideoItem], list[CaptionItem]]
Reader = Callable[..., Items]
DATASETS: Registry[Reader] = Registry("dataset")


def with_splits(*splits: str) -> Callable[[Reader], Reader]:
    """Decorator recording a reader's fixed splits on it (``reader.splits``).

    Why: the reader checks a split against this list, and parameter validation reads the same
    list (:func:`dataset_splits`) before any work starts, so the two cannot disagree.
    """

    def add(reader: Reader) -> Reader:
        reader.splits = splits  # type: ignore[attr-defined]
        return reader

    return add


def dataset_splits(name: str) -> tuple[str, ...] | None:
    """The fixed splits of dataset ``name``, or None when its files define them (``folder``).

    Raises:
        KeyError: an unknown dataset (the message lists the registered ones).
    """
    return getattr(DATASETS.get(name), "splits", None)


def load_dataset(
    name: str,
    root: str | os.PathLike,
    split: str,
    on_error: Literal["raise", "skip"] = "raise",
    **kw: Any,
) -> RetrievalDataset:
    """Read dataset ``name`` at ``root`` for ``split`` and check that every video file is there.

    Args:
        name: a name in ``DATASETS`` (KeyError lists them).
        root: the dataset folder (annotation files at the top, see the module docstring).
        split: one of the dataset's splits (the error lists them).
        on_error: a missing or empty video file raises ``MissingVideoError`` ("raise") or is
            dropped with its captions and recorded in ``dataset.skipped`` ("skip").
        **kw: reader options, e.g. ``video_dir=`` for every reader, ``annotations=`` for folder.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    reader = DATASETS.get(name)
    root = Path(root).expanduser()
    videos, captions = reader(root, split, **kw)
    _refuse_shared_files(name, split, videos)
    bad = [(v, reason) for v in videos if (reason := file_problem(v.path))]
    if bad and on_error == "raise":
        raise _missing_videos_error(name, split, len(videos), bad)
    dropped = {v.video_id for v, _ in bad}
    return RetrievalDataset(
        name=name,
        split=split,
        root=root,
        videos=[v for v in videos if v.video_id not in dropped],
        captions=[c for c in captions if c.video_id not in dropped],
        skipped=[(v.video_id, f"{reason}: {v.path}") for v, reason in bad],
    )


def _refuse_shared_files(name: str, split: str, videos: list[VideoItem]) -> None:
    """Refuse two ids naming the same clip of the same file (e.g. ``x`` and ``x.mp4``).

    Why refuse: they would become two gallery videos with identical features, so every query
    of either has a false "wrong" neighbour; which id the captions meant cannot be guessed.
    """
    first: dict[tuple[str, float | None, float | None], str] = {}
    for v in videos:
        key = (os.path.normpath(v.path), v.start, v.end)
        if (other := first.setdefault(key, v.video_id)) != v.video_id:
            raise DatasetError(
                f"dataset {name!r} split {split!r}: video ids {other!r} and {v.video_id!r} both "
                f"name {v.path}; use one id per video file"
            )


def _missing_videos_error(
    name: str, split: str, total: int, bad: list[tuple[VideoItem, str]]
) -> MissingVideoError:
    shown = [f"  {v.video_id}: {reason} ({v.path})" for v, reason in bad[:MAX_LISTED]]
    more = len(bad) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return MissingVideoError(
        f"dataset {name!r} split {split!r}: {len(bad)} of {total} videos are missing or empty:\n"
        + "\n".join(shown)
        + tail
        + "\nPass video_dir= if the videos live elsewhere, or on_error='skip' to drop them (they are listed in .skipped)."
    )


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a video (or image), or None. Decoding problems are found later, by the decoder."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot stat file ({e.strerror})"
    if not path.is_file():
        return "not a regular file"
    return "empty file (0 bytes)" if size == 0 else None
