"""YouCook2 clips from the distributed annotation JSON: each annotated segment is one video."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    caption_field,
    check_split,
    expect_type,
    find_video,
    get_field,
    require_files,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    DatasetError,
    Items,
    VideoItem,
    with_splits,
)
from vrlib.io import read_json

_SUBSETS = {"train": "training", "val": "validation"}
ANNOTATIONS = "youcookii_annotations_trainval.json"


@DATASETS.register("youcook2")
@with_splits(*_SUBSETS)
def read_youcook2(root: Path, split: str, video_dir: str | None = None) -> Items:
    """YouCook2 (Zhou et al. 2018) ``youcookii_annotations_trainval.json``:
    ``{"database": {"<youtube id>": {"subset", "recipe_type", "annotations": [{"segment":
    [start, end], "id", "sentence"}]}}}``.

    Every annotated segment is one clip (id ``<youtube id>_<segment id>``, ``start``/``end`` in
    seconds of the source video) with its sentence as the query: clip retrieval as in UniVL and
    VideoCLIP, on the ``validation`` subset for ``val``. Source videos are looked up as the
    distribution lays them out, ``raw_videos/<subset>/<recipe_type>/<id>.<ext>``, else flat in
    ``videos/``; the clips of one file are segments of it.
    """
    check_split("youcook2", split, read_youcook2.splits)
    (path,) = require_files("youcook2", root, split, [root / ANNOTATIONS])
    data = expect_type(read_json(path), dict, str(path))
    database = get_field(data, "database", str(path), dict)
    videos, captions = [], []
    for ytid, entry in database.items():
        where = f"{path} database[{ytid!r}]"
        if get_field(entry, "subset", where) != _SUBSETS[split]:
            continue
        file = _source_video(
            root, video_dir, _SUBSETS[split], str(entry.get("recipe_type", "")), ytid
        )
        for i, ann in enumerate(get_field(entry, "annotations", where, list)):
            at = f"{where} annotations[{i}]"
            start, end = _segment(get_field(ann, "segment", at, list), at)
            clip = f"{ytid}_{ann.get('id', i)}"
            videos.append(VideoItem(clip, file, start=start, end=end, meta={"youtube_id": ytid}))
            captions.append(CaptionItem(clip, caption_field(ann, "sentence", at)))
    return videos, captions


def _source_video(root: Path, video_dir: str | None, subset: str, recipe: str, ytid: str) -> Path:
    """``video_dir/<id>``, else the distributed ``raw_videos/<subset>/<recipe>/<id>``, else
    ``videos/<id>``; when none exists, the distributed path (so the error names it)."""
    if video_dir is not None:
        return find_video(root / video_dir, [ytid])
    nested = find_video(root / "raw_videos" / subset / recipe, [ytid])
    flat = find_video(root / "videos", [ytid])
    return flat if flat.exists() and not nested.exists() else nested


def _segment(segment: list, where: str) -> tuple[float, float]:
    if (
        len(segment) != 2
        or not all(isinstance(t, int | float) for t in segment)
        or segment[0] >= segment[1]
    ):
        raise DatasetError(
            f"{where}: segment must be [start, end] seconds with start < end; got {segment}"
        )
    return float(segment[0]), float(segment[1])
