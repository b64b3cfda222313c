"""ActivityNet Captions as paragraph-to-video retrieval (val1), like CLIP4Clip and Frozen in Time."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    check_split,
    expect_type,
    find_video,
    find_video_dir,
    get_field,
    nonempty_text,
    require_files,
    videos_for,
)
from vrlib.data.datasets.base import DATASETS, CaptionItem, Items, VideoItem, with_splits
from vrlib.io import read_json

_FILES = {"train": "train.json", "val1": "val_1.json", "val2": "val_2.json"}


@DATASETS.register("activitynet")
@with_splits(*_FILES)
def read_activitynet(root: Path, split: str, video_dir: str | None = None) -> Items:
    """ActivityNet Captions (Krishna et al. 2017) ``train.json`` / ``val_1.json`` /
    ``val_2.json``: ``{"v_<youtube id>": {"duration", "timestamps", "sentences"}}``.

    Paragraph retrieval: each video's sentences, stripped and in file order, joined with spaces
    into one query (the protocol of CLIP4Clip, Collaborative Experts and Frozen in Time, whose
    test set is ``val1``, 4,917 videos). The whole file is used. Videos:
    ``videos/v_<id>.<ext>`` or without the ``v_`` prefix (both are distributed).
    """
    check_split("activitynet", split, read_activitynet.splits)
    (path,) = require_files("activitynet", root, split, [root / _FILES[split]])
    vdir = find_video_dir(root, video_dir, ["videos", "activitynet_videos", "Activity_Videos"])
    data = expect_type(read_json(path), dict, str(path))
    captions, durations = [], {}
    for vid, entry in data.items():
        where = f"{path} [{vid!r}]"
        sentences = get_field(entry, "sentences", where, list)
        parts = [
            nonempty_text(s, f"{where} sentences[{i}]", "sentence").strip()
            for i, s in enumerate(sentences)
        ]
        if not parts:
            continue
        captions.append(CaptionItem(vid, " ".join(parts)))
        durations[vid] = entry.get("duration")

    def make_video(vid: str) -> VideoItem:
        stems = [vid, vid[2:]] if vid.startswith("v_") else [vid, f"v_{vid}"]
        return VideoItem(vid, find_video(vdir, stems), meta={"duration": durations[vid]})

    return videos_for(captions, make_video), captions
