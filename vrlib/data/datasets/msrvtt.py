"""MSR-VTT in CLIP4Clip's ``msrvtt_data`` files: the 1k-A, full, 9k and 7k splits."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    _caption,
    _check_split,
    _expect,
    _find_video,
    _get,
    _read_csv,
    _require_files,
    _video_dir,
    _videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    Items,
    VideoItem,
)
from vrlib.io import read_json


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
