"""VATEX v1.0 json, English captions; cut clips or segments of full videos."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    check_split,
    expect_type,
    find_video,
    find_video_dir,
    get_field,
    nonempty_text,
    read_id_list,
    refuse_duplicates,
    require_files,
    videos_for,
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


@DATASETS.register("vatex")
@with_splits("train", "val")
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
    check_split("vatex", split, read_vatex.splits)
    (path,) = require_files("vatex", root, split, [root / files[split]])
    vdir = find_video_dir(root, video_dir, ["videos", "vatex_videos"])
    entries = [
        (f"{path} [{i}]", e) for i, e in enumerate(expect_type(read_json(path), list, str(path)))
    ]
    wanted = set(read_id_list(root / video_list)) if video_list else None
    segments = {}
    captions = []
    refuse_duplicates(((w, (get_field(e, "videoID", w),)) for w, e in entries), "videoID")
    for where, e in entries:
        vid = get_field(e, "videoID", where)
        if wanted is not None and vid not in wanted:
            continue
        segments[vid] = _vatex_segment(vid, where)
        captions += [
            CaptionItem(vid, nonempty_text(t, where, "enCap"))
            for t in get_field(e, "enCap", where, list)
        ]

    def make_video(vid: str) -> VideoItem:
        ytid, start, end = segments[vid]
        meta = {"youtube_id": ytid, "start": start, "end": end}
        clip = find_video(vdir, [vid])
        if clip.exists() or not (full := find_video(vdir, [ytid])).exists():
            return VideoItem(vid, clip, meta=meta)
        return VideoItem(vid, full, start=start, end=end, meta=meta)

    return videos_for(captions, make_video, segments), captions


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
