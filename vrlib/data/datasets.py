"""Text-video retrieval datasets: one small reader per dataset, looked up by name in ``DATASETS``.

Why: every study runs the same pipeline on the embedded synthetic world and on real benchmarks,
so a dataset is reduced to plain data — a list of videos (id, path, optional segment), a list of
captions (video id, text, tags) and the caption -> video index the metrics need. Readers return
paths and captions, never frames (decoding lives in ``vrlib.data.video``).

Readers understand the files in the layouts their maintainers distribute and that CLIP4Clip,
CLIP2Video and Frozen in Time use, so someone who has MSR-VTT on disk can point ``root`` at it:

============  =====================  ===========================================================
name          splits                 files under ``root``
============  =====================  ===========================================================
synthetic     train, val, test       annotations/videos.jsonl, annotations/captions.jsonl,
                                     splits.json (written by ``vrlib.data.synthetic``)
folder        all (+ split column)   captions.csv / captions.jsonl (or ``annotations=``)
msrvtt        1k-A, full, 9k, 7k     MSRVTT_JSFUSION_test.csv, MSRVTT_data.json,
                                     MSRVTT_train.9k.csv, MSRVTT_train.7k.csv; videos/all/<id>.mp4
msvd          train, val, test       raw-captions.pkl, <split>_list.txt; videos/<id>.avi
lsmdc         train, val, test       LSMDC16_annos_training.csv, LSMDC16_annos_val.csv,
                                     LSMDC16_challenge_1000_publictect.csv; avi/<movie>/<clip>.avi
vatex         train, val             vatex_training_v1.0.json, vatex_validation_v1.0.json;
                                     videos/<videoID>.mp4
didemo        train, val, test       <split>_data.json; videos/<video>
============  =====================  ===========================================================

Every reader also takes ``video_dir=`` (absolute, or relative to ``root``) for videos kept
elsewhere. Adding a dataset is one function decorated with ``@DATASETS.register(name)`` that
returns ``(videos, captions)``; ``load_dataset`` does the rest (video checks, skipping, indexing).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vrlib.io import read_json
from vrlib.registry import Registry

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
SYNTHETIC_SPLITS = ("train", "val", "test")
_MAX_LISTED = 5  # missing videos named in one error message


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
                f"dataset, e.g. {sorted(set(unknown))[:_MAX_LISTED]}"
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
    bad = [(v, reason) for v in videos if (reason := _file_problem(v.path))]
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


def load_image_captions(root: str | os.PathLike, split: str) -> list[tuple[Path, str]]:
    """(image path, caption) pairs of a synthetic world's images (``annotations/images.jsonl``).

    Why: the image-text expert is pretrained on images alone (no motion words), like CLIP.
    """
    root = Path(root).expanduser()
    path = root / "annotations" / "images.jsonl"
    _check_split("synthetic images", split, SYNTHETIC_SPLITS)
    _require_files("synthetic images", root, split, [path])
    pairs = []
    for where, entry in _read_jsonl(path):
        if _get(entry, "split", where) == split:
            pairs.append((root / _get(entry, "path", where), _caption(entry, "caption", where)))
    missing = [str(p) for p, _ in pairs if _file_problem(p)]
    if missing:
        raise DatasetError(
            f"{path}: {len(missing)} images of split {split!r} are missing or empty, e.g. {missing[:_MAX_LISTED]}"
        )
    return pairs


# ----------------------------------------------------------------------------- readers


@DATASETS.register("synthetic")
def read_synthetic(root: Path, split: str, video_dir: str | None = None) -> Items:
    """The embedded world (``vrlib.data.synthetic``): paths relative to ``root``, tags kept.

    ``splits.json`` decides membership and order; ``video_dir=`` looks the annotated file
    names up in another folder (e.g. re-encoded copies).
    """
    _check_split("synthetic", split, SYNTHETIC_SPLITS)
    videos_path = root / "annotations" / "videos.jsonl"
    captions_path = root / "annotations" / "captions.jsonl"
    splits_path = root / "splits.json"
    _require_files("synthetic", root, split, [videos_path, captions_path, splits_path])
    entries = {_get(e, "video_id", w): (w, e) for w, e in _read_jsonl(videos_path)}
    splits = _expect(read_json(splits_path), dict, str(splits_path))
    ids = _get(splits, split, str(splits_path), list)
    absent = [v for v in ids if v not in entries]
    if absent:
        raise DatasetError(
            f"{splits_path}: split {split!r} lists ids not in {videos_path}: {absent[:_MAX_LISTED]}"
        )

    def make_video(vid: str) -> VideoItem:
        where, e = entries[vid]
        rel = Path(_get(e, "path", where))
        path = root / rel if video_dir is None else root / video_dir / rel.name
        return VideoItem(vid, path, meta=dict(e.get("meta") or {}))

    wanted = set(ids)
    captions = [
        CaptionItem(
            vid, _caption(e, "caption", w), tuple(_get(e, "tags", w, list) if "tags" in e else ())
        )
        for w, e in _read_jsonl(captions_path)
        if (vid := _get(e, "video_id", w)) in wanted
    ]
    return [make_video(v) for v in dict.fromkeys(ids)], captions


@DATASETS.register("folder")
def read_folder(
    root: Path, split: str, annotations: str | None = None, video_dir: str | None = None
) -> Items:
    """Any folder of videos with a CSV (``video_id,caption`` header) or JSONL of captions.

    Column/key aliases: ``video_id`` or ``video``; ``caption``, ``sentence`` or ``text``. An
    optional ``split`` column selects rows; ``split="all"`` takes every row. A ``video_id``
    without a video extension is looked up as ``<video_id>.mp4/.avi/.mkv/.webm/.mov/.m4v``.
    Videos live in ``video_dir`` (default ``root/videos`` if it exists, else ``root``).
    """
    candidates = (
        [annotations]
        if annotations
        else ["captions.csv", "captions.jsonl", "annotations.csv", "annotations.jsonl"]
    )
    paths = [root / c for c in candidates]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise _missing_annotations_error("folder", root, split, paths, any_of=True)
    rows = _read_jsonl(path) if path.suffix == ".jsonl" else _read_csv(path)
    _check_split("folder", split, ("all", *sorted({r["split"] for _, r in rows if "split" in r})))
    vdir = _video_dir(root, video_dir, ["videos", "."])
    captions = [_folder_caption(r, w) for w, r in rows if split in ("all", r.get("split"))]
    return _videos_for(captions, lambda vid: VideoItem(vid, _find_video(vdir, [vid]))), captions


def _folder_caption(row: dict, where: str) -> CaptionItem:
    """A caption from a CSV row or JSONL object, accepting the usual column names."""
    video_id = _get_any(row, ("video_id", "video"), where)
    text = _get_any(row, ("caption", "sentence", "text"), where)
    return CaptionItem(_nonempty(video_id, where, "video_id"), _nonempty(text, where, "caption"))


@DATASETS.register("msrvtt")
def read_msrvtt(root: Path, split: str, video_dir: str | None = None) -> Items:
    """MSR-VTT in CLIP4Clip's ``msrvtt_data`` files; videos at ``videos/all/<id>.mp4``.

    ``1k-A``: the 1,000 (video, caption) pairs of ``MSRVTT_JSFUSION_test.csv`` (JSFusion's
    test split, one caption per video). ``full``: the videos whose ``split`` is ``"test"`` in
    ``MSRVTT_data.json`` (2,990) with all their captions. ``9k``/``7k``: the training video ids
    of ``MSRVTT_train.9k.csv``/``MSRVTT_train.7k.csv`` with all their captions from the JSON.
    ``meta`` holds the JSON's video entry (category, url, start/end time in the source video).
    """
    files = {
        "1k-A": ["MSRVTT_JSFUSION_test.csv"],
        "full": ["MSRVTT_data.json"],
        "9k": ["MSRVTT_train.9k.csv", "MSRVTT_data.json"],
        "7k": ["MSRVTT_train.7k.csv", "MSRVTT_data.json"],
    }
    _check_split("msrvtt", split, files)
    paths = _require_files("msrvtt", root, split, [root / f for f in files[split]])
    vdir = _video_dir(root, video_dir, ["videos/all", "MSRVTT_Videos", "videos"])
    if split == "1k-A":
        captions = [
            CaptionItem(_get(r, "video_id", w), _caption(r, "sentence", w))
            for w, r in _read_csv(paths[0])
        ]
        return _videos_for(captions, lambda vid: VideoItem(vid, _find_video(vdir, [vid]))), captions

    data_path = paths[-1]
    data = _expect(read_json(data_path), dict, str(data_path))
    entries = {
        _get(e, "video_id", f"{data_path} videos[{i}]"): e
        for i, e in enumerate(_get(data, "videos", str(data_path), list))
    }
    if split == "full":
        ids = [vid for vid, e in entries.items() if e.get("split") == "test"]
    else:
        ids = [_get(r, "video_id", w) for w, r in _read_csv(paths[0])]
    wanted = set(ids)
    captions = []
    for i, s in enumerate(_get(data, "sentences", str(data_path), list)):
        where = f"{data_path} sentences[{i}]"
        if (vid := _get(s, "video_id", where)) in wanted:
            captions.append(CaptionItem(vid, _caption(s, "caption", where)))

    def make_video(vid: str) -> VideoItem:
        meta = {k: v for k, v in entries.get(vid, {}).items() if k != "video_id"}
        return VideoItem(vid, _find_video(vdir, [vid]), meta=meta)

    return _videos_for(captions, make_video, ids), captions


@DATASETS.register("msvd")
def read_msvd(root: Path, split: str, video_dir: str | None = None) -> Items:
    """MSVD as CLIP4Clip/collaborative-experts ship it: ``raw-captions.pkl`` maps a video id to
    a list of token lists (joined with spaces), ``<split>_list.txt`` lists the split's ids, and
    videos are ``videos/<id>.avi`` (also ``MSVD_Videos/`` or ``YouTubeClips/``, any extension)."""
    _check_split("msvd", split, ("train", "val", "test"))
    list_path, pkl_path = _require_files(
        "msvd", root, split, [root / f"{split}_list.txt", root / "raw-captions.pkl"]
    )
    raw = _expect(_read_pickle(pkl_path), dict, str(pkl_path))
    vdir = _video_dir(root, video_dir, ["videos", "MSVD_Videos", "YouTubeClips"])
    ids = _read_id_list(list_path)
    captions = []
    for vid in ids:
        where = f"{pkl_path} [{vid!r}]"
        for j, tokens in enumerate(_get(raw, vid, f"{pkl_path} (listed in {list_path})", list)):
            text = " ".join(tokens) if isinstance(tokens, list) else tokens
            captions.append(CaptionItem(vid, _nonempty(text, f"{where}[{j}]", "caption")))
    return _videos_for(
        captions, lambda vid: VideoItem(vid, _find_video(vdir, [vid], ".avi")), ids
    ), captions


@DATASETS.register("lsmdc")
def read_lsmdc(root: Path, split: str, video_dir: str | None = None) -> Items:
    """LSMDC 2016 retrieval files (tab-separated, no header): clip id, start/end aligned,
    start/end extracted, sentence. A clip id can carry several sentences in the training file;
    the 1,000-clip test file has one each. Videos: ``avi/<movie>/<clip_id>.avi`` (the movie is
    the clip id up to its last ``_``), or flat ``<video_dir>/<clip_id>.avi``. The four times
    (source-movie timestamps) go into ``meta``; the clip files are already cut."""
    files = {
        "train": "LSMDC16_annos_training.csv",
        "val": "LSMDC16_annos_val.csv",
        "test": "LSMDC16_challenge_1000_publictect.csv",
    }
    _check_split("lsmdc", split, files)
    (path,) = _require_files("lsmdc", root, split, [root / files[split]])
    vdir = _video_dir(root, video_dir, ["avi", "videos", "LSMDC_Videos"])
    meta: dict[str, dict] = {}
    captions = []
    names = ("start_aligned", "end_aligned", "start_extracted", "end_extracted")
    for where, fields in _read_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE):
        if len(fields) != 6:
            raise DatasetError(
                f"{where}: expected 6 tab-separated fields (clip id, 4 times, sentence), got {len(fields)}"
            )
        clip = _nonempty(fields[0], where, "clip id")
        meta.setdefault(clip, dict(zip(names, fields[1:5], strict=True)))
        captions.append(CaptionItem(clip, _nonempty(fields[5], where, "sentence")))

    def make_video(clip: str) -> VideoItem:
        movie = clip.rsplit("_", 1)[0]
        return VideoItem(
            clip, _find_video(vdir, [f"{movie}/{clip}", clip], ".avi"), meta=meta[clip]
        )

    return _videos_for(captions, make_video), captions


@DATASETS.register("vatex")
def read_vatex(
    root: Path, split: str, video_dir: str | None = None, video_list: str | None = None
) -> Items:
    """VATEX v1.0 json (``[{"videoID": "<ytid>_<start>_<end>", "enCap": [...], "chCap": [...]}]``),
    English captions only.

    ``videoID`` ends in the segment's start and end second in the YouTube video; both go into
    ``meta``. If ``videos/<videoID>.mp4`` (the cut 10 s clip, what most people download) exists,
    the whole file is used; else if ``videos/<ytid>.mp4`` (the full YouTube video) exists,
    ``start``/``end`` select the segment. ``video_list=`` (a text file of ids, e.g. CLIP2Video's
    HGR ``test_list.txt`` drawn from the validation json) restricts the split to those ids.
    """
    files = {"train": "vatex_training_v1.0.json", "val": "vatex_validation_v1.0.json"}
    _check_split("vatex", split, files)
    (path,) = _require_files("vatex", root, split, [root / files[split]])
    vdir = _video_dir(root, video_dir, ["videos", "vatex_videos"])
    entries = [
        (f"{path} [{i}]", e) for i, e in enumerate(_expect(read_json(path), list, str(path)))
    ]
    wanted = set(_read_id_list(root / video_list)) if video_list else None
    segments = {}
    captions = []
    for where, e in entries:
        vid = _get(e, "videoID", where)
        if wanted is not None and vid not in wanted:
            continue
        segments[vid] = _vatex_segment(vid, where)
        captions += [
            CaptionItem(vid, _nonempty(t, where, "enCap")) for t in _get(e, "enCap", where, list)
        ]

    def make_video(vid: str) -> VideoItem:
        ytid, start, end = segments[vid]
        meta = {"youtube_id": ytid, "start": start, "end": end}
        clip = _find_video(vdir, [vid])
        if clip.exists() or not (full := _find_video(vdir, [ytid])).exists():
            return VideoItem(vid, clip, meta=meta)
        return VideoItem(vid, full, start=start, end=end, meta=meta)

    return _videos_for(captions, make_video, segments), captions


@DATASETS.register("didemo")
def read_didemo(root: Path, split: str, video_dir: str | None = None) -> Items:
    """DiDeMo (``<split>_data.json``: ``{"video", "description", "times", ...}`` per moment) as
    paragraph retrieval, like CLIP4Clip: each video's descriptions, in file order, joined with
    spaces into one caption. ``video`` is the file name (e.g. ``...87ef417396.mov``); a file with
    the same stem and another extension (a transcoded copy) is accepted. Annotations cover the
    first 30 s; the whole file is used (CLIP4Clip reads seconds 0-31)."""
    _check_split("didemo", split, ("train", "val", "test"))
    (path,) = _require_files("didemo", root, split, [root / f"{split}_data.json"])
    vdir = _video_dir(root, video_dir, ["videos", "DiDeMo_Videos"])
    texts: dict[str, list[str]] = {}
    for i, e in enumerate(_expect(read_json(path), list, str(path))):
        where = f"{path} [{i}]"
        texts.setdefault(_get(e, "video", where), []).append(_caption(e, "description", where))
    captions = [CaptionItem(vid, " ".join(parts)) for vid, parts in texts.items()]

    def make_video(vid: str) -> VideoItem:
        stem = vid[: -len(ext)] if (ext := _video_ext(vid)) else vid
        return VideoItem(vid, _find_video(vdir, [vid, stem]))

    return _videos_for(captions, make_video), captions


# ----------------------------------------------------------------------------- helpers


def _videos_for(
    captions: Sequence[CaptionItem],
    make_video: Callable[[str], VideoItem],
    ids: Iterable[str] | None = None,
) -> list[VideoItem]:
    """Unique videos in ``ids`` order (default: order of first caption), built by ``make_video``."""
    order = ids if ids is not None else (c.video_id for c in captions)
    return [make_video(vid) for vid in dict.fromkeys(order)]


def _check_split(name: str, split: str, valid: Iterable[str]) -> None:
    valid = list(valid)
    if split not in valid:
        raise DatasetError(
            f"unknown split {split!r} for dataset {name!r}; valid: {', '.join(valid)}"
        )


def _require_files(name: str, root: Path, split: str, paths: list[Path]) -> list[Path]:
    """Return ``paths`` if all exist; else raise naming every expected file and the root."""
    if any(not p.is_file() for p in paths):
        raise _missing_annotations_error(name, root, split, paths)
    return paths


def _missing_annotations_error(
    name: str, root: Path, split: str, paths: list[Path], any_of: bool = False
) -> MissingAnnotationError:
    listing = "\n".join(f"  {'ok     ' if p.is_file() else 'MISSING'} {p}" for p in paths)
    need = "one of these annotation files" if any_of else "these annotation files"
    return MissingAnnotationError(
        f"dataset {name!r} split {split!r} under root {root} needs {need}:\n{listing}"
    )


def _missing_videos_error(
    name: str, split: str, total: int, bad: list[tuple[VideoItem, str]]
) -> MissingVideoError:
    shown = [f"  {v.video_id}: {reason} ({v.path})" for v, reason in bad[:_MAX_LISTED]]
    more = len(bad) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return MissingVideoError(
        f"dataset {name!r} split {split!r}: {len(bad)} of {total} videos are missing or empty:\n"
        + "\n".join(shown)
        + tail
        + "\nPass video_dir= if the videos live elsewhere, or on_error='skip' to drop them (they are listed in .skipped)."
    )


def _file_problem(path: Path) -> str | None:
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


def _video_dir(root: Path, given: str | os.PathLike | None, defaults: list[str]) -> Path:
    """``root/given`` if given, else the first default folder that exists (else the first default)."""
    if given is not None:
        return root / given
    return next((root / d for d in defaults if (root / d).is_dir()), root / defaults[0])


def _video_ext(name: str) -> str:
    """The name's video extension (as written) or '' — ids like LSMDC's contain dots."""
    return next((name[-len(e) :] for e in VIDEO_EXTENSIONS if name.lower().endswith(e)), "")


def _find_video(video_dir: Path, stems: list[str], default_ext: str = ".mp4") -> Path:
    """First existing ``video_dir/<stem><ext>`` over stems and common extensions.

    A stem that already ends in a video extension is taken as is. When nothing exists, the
    path the dataset's layout expects is returned, so the missing-video error names it.
    """
    for stem in stems:
        if _video_ext(stem):
            if (video_dir / stem).exists():
                return video_dir / stem
            continue
        for ext in (default_ext, *VIDEO_EXTENSIONS):
            if (candidate := video_dir / f"{stem}{ext}").exists():
                return candidate
    first = stems[0]
    return video_dir / (first if _video_ext(first) else f"{first}{default_ext}")


def _vatex_segment(video_id: str, where: str) -> tuple[str, float, float]:
    """``"<ytid>_<start>_<end>"`` -> (ytid, start s, end s); YouTube ids may contain ``_``."""
    parts = video_id.rsplit("_", 2)
    try:
        ytid, start, end = parts[0], float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise DatasetError(
            f"{where}: videoID {video_id!r} is not '<youtube id>_<start>_<end>'"
        ) from None
    return ytid, start, end


def _read_rows(
    path: Path, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> list[tuple[str, list[str]]]:
    """Non-blank rows of a delimited file as ``("<path>:<line>", fields)``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        try:
            return [
                (f"{path}:{reader.line_num}", row) for row in reader if any(s.strip() for s in row)
            ]
        except csv.Error as e:
            raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def _read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV with a header line as ``("<path>:<line>", {column: value})``."""
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: empty file (expected a header line)")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    for where, fields in body:
        if len(fields) != len(header):
            raise DatasetError(
                f"{where}: {len(fields)} fields but the header has {len(header)} ({','.join(header)})"
            )
    return [(where, dict(zip(header, fields, strict=True))) for where, fields in body]


def _read_jsonl(path: Path) -> list[tuple[str, dict]]:
    """Objects of a JSON-lines file as ``("<path>:<line>", object)``; blank lines are skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            out.append((f"{path}:{n}", _expect(obj, dict, f"{path}:{n}")))
    return out


def _read_id_list(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingAnnotationError(f"{path}: video id list not found")
    return [s for line in path.read_text(encoding="utf-8").splitlines() if (s := line.strip())]


def _read_pickle(path: Path) -> Any:
    """Load a pickle (the format MSVD's captions are distributed in; only open files you trust)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise DatasetError(f"{path}: not a readable pickle ({e})") from None


def _expect(obj: Any, kind: type, where: str) -> Any:
    if not isinstance(obj, kind):
        raise DatasetError(f"{where}: expected a JSON {kind.__name__}, got {type(obj).__name__}")
    return obj


def _get(entry: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """``entry[key]``, checked to be of ``kind``; errors name the file/line or entry."""
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise DatasetError(
            f"{where}: {key!r} should be {getattr(kind, '__name__', kind)}, got {value!r}"
        )
    return value


def _get_any(entry: dict, keys: Sequence[str], where: str) -> Any:
    """The value of the first of ``keys`` present (column aliases)."""
    key = next((k for k in keys if k in entry), None)
    if key is None:
        raise DatasetError(
            f"{where}: needs one of the keys/columns {list(keys)}, has {sorted(entry)}"
        )
    return entry[key]


def _caption(entry: Any, key: str, where: str) -> str:
    return _nonempty(_get(entry, key, where), where, key)


def _nonempty(text: Any, where: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: empty or non-text {what} {text!r}")
    return text.strip()
