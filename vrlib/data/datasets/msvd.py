"""MSVD as CLIP4Clip and collaborative-experts ship it (``raw-captions.pkl``, split lists)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from vrlib.data.datasets.annotations import (
    _check_split,
    _expect,
    _find_video,
    _get,
    _nonempty,
    _read_id_list,
    _require_files,
    _video_dir,
    _videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    DatasetError,
    Items,
    VideoItem,
)


@DATASETS.register("msvd")
def read_msvd(root: Path, split: str, video_dir: str | None = None) -> Items:
    """MSVD as CLIP4Clip/collaborative-experts ship it: ``raw-captions.pkl`` maps a video id to
    a list of token lists (joined with spaces), ``<split>_list.txt`` lists the split's ids, and
    videos are ``videos/<id>.avi`` (also ``MSVD_Videos/`` or ``YouTubeClips/``, any extension)."""
    _check_split("msvd", split, ("train", "val", "test"))
    list_path, pkl_path = _require_files(
        "msvd", root, split, [root / f"{split}_list.txt", root / "raw-captions.pkl"]
    )
    raw = _expect(_read_pickle(pkl_path), dict, str(pkl_path))
    vdir = _video_dir(root, video_dir, ["videos", "MSVD_Videos", "YouTubeClips"])
    ids = _read_id_list(list_path)
    captions = []
    for vid in ids:
        where = f"{pkl_path} [{vid!r}]"
        for j, tokens in enumerate(_get(raw, vid, f"{pkl_path} (listed in {list_path})", list)):
            text = " ".join(tokens) if isinstance(tokens, list) else tokens
            captions.append(CaptionItem(vid, _nonempty(text, f"{where}[{j}]", "caption")))
    return _videos_for(
        captions, lambda vid: VideoItem(vid, _find_video(vdir, [vid], ".avi")), ids
    ), captions


def _read_pickle(path: Path) -> Any:
    """Load a pickle (the format MSVD's captions are distributed in; only open files you trust)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise DatasetError(f"{path}: not a readable pickle ({e})") from None
