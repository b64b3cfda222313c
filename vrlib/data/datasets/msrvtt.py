"""MSR-VTT in CLIP4Clip's ``msrvtt_data`` files: the 1k-A, full, 9k and 7k splits."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    caption_field,
    check_split,
    expect_type,
    find_video,
    find_video_dir,
    get_field,
    read_csv,
    require_files,
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


@DATASETS.register("msrvtt")
@with_splits("1k-A", "full", "9k", "7k")
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
    check_split("msrvtt", split, read_msrvtt.splits)
    paths = require_files("msrvtt", root, split, [root / f for f in files[split]])
    vdir = find_video_dir(root, video_dir, ["videos/all", "MSRVTT_Videos", "videos"])
    if split == "1k-A":
        captions = [
            CaptionItem(get_field(r, "video_id", w), caption_field(r, "sentence", w))
            for w, r in read_csv(paths[0])
        ]
        return videos_for(captions, lambda vid: VideoItem(vid, find_video(vdir, [vid]))), captions

    data_path = paths[-1]
    data = expect_type(read_json(data_path), dict, str(data_path))
    entries = {
        get_field(e, "video_id", f"{data_path} videos[{i}]"): e
        for i, e in enumerate(get_field(data, "videos", str(data_path), list))
    }
    if split == "full":
        ids = [vid for vid, e in entries.items() if e.get("split") == "test"]
    else:
        ids = [get_field(r, "video_id", w) for w, r in read_csv(paths[0])]
    wanted = set(ids)
    captions = []
    for i, s in enumerate(get_field(data, "sentences", str(data_path), list)):
        where = f"{data_path} sentences[{i}]"
        if (vid := get_field(s, "video_id", where)) in wanted:
            captions.append(CaptionItem(vid, caption_field(s, "caption", where)))

    def make_video(vid: str) -> VideoItem:
        meta = {k: v for k, v in entries.get(vid, {}).items() if k != "video_id"}
        return VideoItem(vid, find_video(vdir, [vid]), meta=meta)

    return videos_for(captions, make_video, ids), captions
