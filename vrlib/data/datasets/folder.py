"""Any folder of videos with a CSV or JSONL of captions (the way to bring your own data)."""

from __future__ import annotations

from pathlib import Path

from vrlib.data.datasets.annotations import (
    check_split,
    find_video,
    find_video_dir,
    get_any_field,
    missing_annotations_error,
    nonempty_text,
    read_csv,
    read_jsonl,
    refuse_duplicates,
    videos_for,
)
from vrlib.data.datasets.base import (
    DATASETS,
    CaptionItem,
    DatasetError,
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
    Videos live in ``video_dir`` (default ``root/videos`` if it exists, else ``root``). A file
    without caption rows, or the same (video, caption) row twice, is refused naming the lines.
    """
    candidates = (
        [annotations]
        if annotations
        else ["captions.csv", "captions.jsonl", "annotations.csv", "annotations.jsonl"]
    )
    paths = [root / c for c in candidates]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise missing_annotations_error("folder", root, split, paths, any_of=True)
    rows = read_jsonl(path) if path.suffix == ".jsonl" else read_csv(path)
    check_split("folder", split, ("all", *sorted({r["split"] for _, r in rows if "split" in r})))
    vdir = find_video_dir(root, video_dir, ["videos", "."])
    chosen = [(w, _folder_caption(r, w)) for w, r in rows if split in ("all", r.get("split"))]
    if not chosen:
        raise DatasetError(f"dataset 'folder' split {split!r}: {path} has no caption rows")
    refuse_duplicates(((w, (c.video_id, c.text)) for w, c in chosen), "row (video_id, caption)")
    captions = [c for _, c in chosen]
    return videos_for(captions, lambda vid: VideoItem(vid, find_video(vdir, [vid]))), captions


def _folder_caption(row: dict, where: str) -> CaptionItem:
    """A caption from a CSV row or JSONL object, accepting the usual column names."""
    video_id = get_any_field(row, ("video_id", "video"), where)
    text = get_any_field(row, ("caption", "sentence", "text"), where)
    return CaptionItem(
        nonempty_text(video_id, where, "video_id"), nonempty_text(text, where, "caption")
    )
