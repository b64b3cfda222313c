"""The embedded synthetic world (``vrlib.data.synthetic``): its videos and its still images."""

from __future__ import annotations

import os
from pathlib import Path

from vrlib.data.datasets.annotations import (
    caption_field,
    check_split,
    expect_type,
    get_field,
    read_jsonl,
    require_files,
)
from vrlib.data.datasets.base import (
    DATASETS,
    MAX_LISTED,
    CaptionItem,
    DatasetError,
    Items,
    VideoItem,
    file_problem,
    with_splits,
)
from vrlib.io import read_json

SYNTHETIC_SPLITS = ("train", "val", "test")


def load_image_captions(root: str | os.PathLike, split: str) -> list[tuple[Path, str]]:
    """(image path, caption) pairs of a synthetic world's images (``annotations/images.jsonl``).

    Why: the image-text expert is pretrained on images alone (no motion words), like CLIP.
    """
    root = Path(root).expanduser()
    path = root / "annotations" / "images.jsonl"
    check_split("synthetic images", split, SYNTHETIC_SPLITS)
    require_files("synthetic images", root, split, [path])
    pairs = []
    for where, entry in read_jsonl(path):
        if get_field(entry, "split", where) == split:
            pairs.append(
                (root / get_field(entry, "path", where), caption_field(entry, "caption", where))
            )
    missing = [str(p) for p, _ in pairs if file_problem(p)]
    if missing:
        raise DatasetError(
            f"{path}: {len(missing)} images of split {split!r} are missing or empty, e.g. {missing[:MAX_LISTED]}"
        )
    return pairs


@DATASETS.register("synthetic")
@with_splits(*SYNTHETIC_SPLITS)
def read_synthetic(root: Path, split: str, video_dir: str | None = None) -> Items:
    """The embedded world (``vrlib.data.synthetic``): paths relative to ``root``, tags kept.

    ``splits.json`` decides membership and order; ``video_dir=`` looks the annotated file
    names up in another folder (e.g. re-encoded copies).
    """
    check_split("synthetic", split, SYNTHETIC_SPLITS)
    videos_path = root / "annotations" / "videos.jsonl"
    captions_path = root / "annotations" / "captions.jsonl"
    splits_path = root / "splits.json"
    require_files("synthetic", root, split, [videos_path, captions_path, splits_path])
    entries = {get_field(e, "video_id", w): (w, e) for w, e in read_jsonl(videos_path)}
    splits = expect_type(read_json(splits_path), dict, str(splits_path))
    ids = get_field(splits, split, str(splits_path), list)
    absent = [v for v in ids if v not in entries]
    if absent:
        raise DatasetError(
            f"{splits_path}: split {split!r} lists ids not in {videos_path}: {absent[:MAX_LISTED]}"
        )

    def make_video(vid: str) -> VideoItem:
        where, e = entries[vid]
        rel = Path(get_field(e, "path", where))
        path = root / rel if video_dir is None else root / video_dir / rel.name
        return VideoItem(vid, path, meta=dict(e.get("meta") or {}))

    wanted = set(ids)
    captions = [
        CaptionItem(
            vid,
            caption_field(e, "caption", w),
            tuple(get_field(e, "tags", w, list) if "tags" in e else ()),
        )
        for w, e in read_jsonl(captions_path)
        if (vid := get_field(e, "video_id", w)) in wanted
    ]
    return [make_video(v) for v in dict.fromkeys(ids)], captions
