"""Any folder of videos with a CSV or JSONL of captions (the way to bring your own data)."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    _check_split,
    _find_video,
    _get_any,
    _missing_annotations_error,
    _nonempty,
    _read_csv,
    _read_jsonl,
    _video_dir,
    _videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    Items,
    VideoItem,
)


@DATASETS.register("folder")
def read_folder(
    root: Path, split: str, annotations: str | None = None, video_dir: str | None = None
) -> Items:
    """Any folder of videos with a CSV (``video_id,caption`` header) or JSONL of captions.

    Column/key aliases: ``video_id`` or ``video``; ``caption``, ``sentence`` or ``text``. An
    optional ``split`` column selects rows; ``split="all"`` takes every row. A ``video_id``
    without a video extension is looked up as ``<video_id>.mp4/.avi/.mkv/.webm/.mov/.m4v``.
    Videos live in ``video_dir`` (default ``root/videos`` if it exists, else ``root``).
    """
    candidates = (
        [annotations]
        if annotations
        else ["captions.csv", "captions.jsonl", "annotations.csv", "annotations.jsonl"]
    )
    paths = [root / c for c in candidates]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise _missing_annotations_error("folder", root, split, paths, any_of=True)
    rows = _read_jsonl(path) if path.suffix == ".jsonl" else _read_csv(path)
    _check_split("folder", split, ("all", *sorted({r["split"] for _, r in rows if "split" in r})))
    vdir = _video_dir(root, video_dir, ["videos", "."])
    captions = [_folder_caption(r, w) for w, r in rows if split in ("all", r.get("split"))]
    return _videos_for(captions, lambda vid: VideoItem(vid, _find_video(vdir, [vid]))), captions


def _folder_caption(row: dict, where: str) -> CaptionItem:
    """A caption from a CSV row or JSONL object, accepting the usual column names."""
    video_id = _get_any(row, ("video_id", "video"), where)
    text = _get_any(row, ("caption", "sentence", "text"), where)
    return CaptionItem(_nonempty(video_id, where, "video_id"), _nonempty(text, where, "caption"))
