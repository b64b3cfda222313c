"""DiDeMo as paragraph retrieval, like CLIP4Clip."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    _caption,
    _check_split,
    _expect,
    _find_video,
    _get,
    _require_files,
    _video_dir,
    _video_ext,
    _videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    Items,
    VideoItem,
)
from vrlib.io import read_json


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
