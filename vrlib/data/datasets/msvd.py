"""MSVD as CLIP4Clip and collaborative-experts ship it (``raw-captions.pkl``, split lists)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from vrlib.data.datasets.annotations import (
    check_split,
    expect_type,
    find_video,
    find_video_dir,
    get_field,
    nonempty_text,
    read_id_list,
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


@DATASETS.register("msvd")
@with_splits("train", "val", "test")
def read_msvd(root: Path, split: str, video_dir: str | None = None) -> Items:
    """MSVD as CLIP4Clip/collaborative-experts ship it: ``raw-captions.pkl`` maps a video id to
    a list of token lists (joined with spaces), ``<split>_list.txt`` lists the split's ids, and
    videos are ``videos/<id>.avi`` (also ``MSVD_Videos/`` or ``YouTubeClips/``, any extension)."""
    check_split("msvd", split, read_msvd.splits)
    list_path, pkl_path = require_files(
        "msvd", root, split, [root / f"{split}_list.txt", root / "raw-captions.pkl"]
    )
    raw = expect_type(_read_pickle(pkl_path), dict, str(pkl_path))
    vdir = find_video_dir(root, video_dir, ["videos", "MSVD_Videos", "YouTubeClips"])
    ids = read_id_list(list_path)
    captions = []
    for vid in ids:
        where = f"{pkl_path} [{vid!r}]"
        for j, tokens in enumerate(
            get_field(raw, vid, f"{pkl_path} (listed in {list_path})", list)
        ):
            text = " ".join(tokens) if isinstance(tokens, list) else tokens
            captions.append(CaptionItem(vid, nonempty_text(text, f"{where}[{j}]", "caption")))
    return videos_for(
        captions, lambda vid: VideoItem(vid, find_video(vdir, [vid], ".avi")), ids
    ), captions


def _read_pickle(path: Path) -> Any:
    """Load a pickle (the format MSVD's captions are distributed in; only open files you trust)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise DatasetError(f"{path}: not a readable pickle ({e})") from None
