"""DiDeMo as paragraph retrieval, like CLIP4Clip."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    caption_field,
    check_split,
    expect_type,
    find_video,
    find_video_dir,
    get_field,
    require_files,
    video_extension,
    videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    Items,
    VideoItem,
    with_splits,
)
from vrlib.io import read_json


@DATASETS.register("didemo")
@with_splits("train", "val", "test")
def read_didemo(root: Path, split: str, video_dir: str | None = None) -> Items:
    """DiDeMo (``<split>_data.json``: ``{"video", "description", "times", ...}`` per moment) as
    paragraph retrieval, like CLIP4Clip: each video's descriptions, in file order, joined with
    spaces into one caption. ``video`` is the file name (e.g. ``...87ef417396.mov``); a file with
    the same stem and another extension (a transcoded copy) is accepted. Annotations cover the
    first 30 s; the whole file is used (CLIP4Clip reads seconds 0-31)."""
    check_split("didemo", split, read_didemo.splits)
    (path,) = require_files("didemo", root, split, [root / f"{split}_data.json"])
    vdir = find_video_dir(root, video_dir, ["videos", "DiDeMo_Videos"])
    texts: dict[str, list[str]] = {}
    for i, e in enumerate(expect_type(read_json(path), list, str(path))):
        where = f"{path} [{i}]"
        texts.setdefault(get_field(e, "video", where), []).append(
            caption_field(e, "description", where)
        )
    captions = [CaptionItem(vid, " ".join(parts)) for vid, parts in texts.items()]

    def make_video(vid: str) -> VideoItem:
        stem = vid[: -len(ext)] if (ext := video_extension(vid)) else vid
        return VideoItem(vid, find_video(vdir, [vid, stem]))

    return videos_for(captions, make_video), captions
