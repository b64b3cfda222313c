"""LSMDC 2016 retrieval files (tab-separated clip annotations)."""

from __future__ import annotations

import csv
from pathlib import Path

from vrlib.data.datasets.annotations import (
    check_split,
    find_video,
    find_video_dir,
    nonempty_text,
    read_rows,
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


@DATASETS.register("lsmdc")
@with_splits("train", "val", "test")
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
    check_split("lsmdc", split, read_lsmdc.splits)
    (path,) = require_files("lsmdc", root, split, [root / files[split]])
    vdir = find_video_dir(root, video_dir, ["avi", "videos", "LSMDC_Videos"])
    meta: dict[str, dict] = {}
    captions = []
    names = ("start_aligned", "end_aligned", "start_extracted", "end_extracted")
    for where, fields in read_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE):
        if len(fields) != 6:
            raise DatasetError(
                f"{where}: expected 6 tab-separated fields (clip id, 4 times, sentence), got {len(fields)}"
            )
        clip = nonempty_text(fields[0], where, "clip id")
        meta.setdefault(clip, dict(zip(names, fields[1:5], strict=True)))
        captions.append(CaptionItem(clip, nonempty_text(fields[5], where, "sentence")))

    def make_video(clip: str) -> VideoItem:
        movie = clip.rsplit("_", 1)[0]
        return VideoItem(clip, find_video(vdir, [f"{movie}/{clip}", clip], ".avi"), meta=meta[clip])

    return videos_for(captions, make_video), captions
