"""Reading annotation files for every dataset family: rows, typed keys, splits and video paths.

Why: every reader meets the same problems (a missing file, a malformed row, a key of the wrong
type, a video under one of several names); solving them once gives every dataset the same
errors, naming the file and line and the reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from vrlib.data.datasets.base import CaptionItem, DatasetError, MissingAnnotationError, VideoItem
from vrlib.io import read_utf8

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def videos_for(
    captions: Sequence[CaptionItem],
    make_video: Callable[[str], VideoItem],
    ids: Iterable[str] | None = None,
) -> list[VideoItem]:
    """Unique videos in ``ids`` order (default: order of first caption), built by ``make_video``."""
    order = ids if ids is not None else (c.video_id for c in captions)
    return [make_video(vid) for vid in dict.fromkeys(order)]


def check_split(name: str, split: str, valid: Iterable[str]) -> None:
    valid = list(valid)
    if split not in valid:
        raise DatasetError(
            f"unknown split {split!r} for dataset {name!r}; valid: {', '.join(valid)}"
        )


def require_files(name: str, root: Path, split: str, paths: list[Path]) -> list[Path]:
    """Return ``paths`` if all exist; else raise naming every expected file and the root."""
    if any(not p.is_file() for p in paths):
        raise missing_annotations_error(name, root, split, paths)
    return paths


def missing_annotations_error(
    name: str, root: Path, split: str, paths: list[Path], any_of: bool = False
) -> MissingAnnotationError:
    listing = "\n".join(f"  {'ok     ' if p.is_file() else 'MISSING'} {p}" for p in paths)
    need = "one of these annotation files" if any_of else "these annotation files"
    return MissingAnnotationError(
        f"dataset {name!r} split {split!r} under root {root} needs {need}:\n{listing}"
    )


def find_video_dir(root: Path, given: str | os.PathLike | None, defaults: list[str]) -> Path:
    """``root/given`` if given, else the first default folder that exists (else the first default)."""
    if given is not None:
        return root / given
    return next((root / d for d in defaults if (root / d).is_dir()), root / defaults[0])


def video_extension(name: str) -> str:
    """The name's video extension (as written) or '' — ids like LSMDC's contain dots."""
    return next((name[-len(e) :] for e in VIDEO_EXTENSIONS if name.lower().endswith(e)), "")


def find_video(video_dir: Path, stems: list[str], default_ext: str = ".mp4") -> Path:
    """First existing ``video_dir/<stem><ext>`` over stems and common extensions.

    A stem that already ends in a video extension is taken as is. When nothing exists, the
    path the dataset's layout expects is returned, so the missing-video error names it.
    """
    for stem in stems:
        if video_extension(stem):
            if (video_dir / stem).exists():
                return video_dir / stem
            continue
        for ext in (default_ext, *VIDEO_EXTENSIONS):
            if (candidate := video_dir / f"{stem}{ext}").exists():
                return candidate
    first = stems[0]
    return video_dir / (first if video_extension(first) else f"{first}{default_ext}")


def read_text(path: Path) -> str:
    """A UTF-8 annotation file's text (BOM dropped); other encodings fail naming file and line."""
    try:
        return read_utf8(path)
    except ValueError as e:
        raise DatasetError(str(e)) from None


def read_rows(
    path: Path, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> list[tuple[str, list[str]]]:
    """Non-blank rows of a delimited UTF-8 file as ``("<path>:<line>", fields)``.

    A field may not hold a line break: in caption files that only happens when a quote is left
    open, which would swallow every later row into one caption and silently drop their videos.
    """
    reader = csv.reader(
        io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=quoting
    )
    rows, first_line = [], 1
    try:
        for row in reader:
            where = f"{path}:{first_line}"
            if any("\n" in s or "\r" in s for s in row):
                raise DatasetError(
                    f"{where}: a field runs over lines {first_line}-{reader.line_num}: an "
                    "unterminated quote? (a caption cannot contain a line break)"
                )
            if any(s.strip() for s in row):
                rows.append((where, row))
            first_line = reader.line_num + 1
    except csv.Error as e:
        raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return rows


def read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV with a header line as ``("<path>:<line>", {column: value})``."""
    rows = read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: empty file (expected a header line)")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    for where, fields in body:
        if len(fields) != len(header):
            raise DatasetError(
                f"{where}: {len(fields)} fields but the header has {len(header)} ({','.join(header)})"
            )
    return [(where, dict(zip(header, fields, strict=True))) for where, fields in body]


def read_jsonl(path: Path) -> list[tuple[str, dict]]:
    """Objects of a UTF-8 JSON-lines file as ``("<path>:<line>", object)``; blank lines are skipped."""
    out = []
    for n, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        out.append((f"{path}:{n}", expect_type(obj, dict, f"{path}:{n}")))
    return out


def read_id_list(path: Path) -> list[str]:
    """The ids of a one-id-per-line split list; a repeated id is refused naming both lines (it
    would add the video's captions twice)."""
    if not path.is_file():
        raise MissingAnnotationError(f"{path}: video id list not found")
    rows = [
        (f"{path}:{n}", s)
        for n, line in enumerate(read_text(path).splitlines(), start=1)
        if (s := line.strip())
    ]
    refuse_duplicates(((where, (vid,)) for where, vid in rows), "video id")
    return [vid for _, vid in rows]


def refuse_duplicates(rows: Iterable[tuple[str, tuple]], what: str) -> None:
    """Raise naming both lines when two rows carry the same ``key`` (e.g. video id and caption).

    Why refuse rather than merge: a repeated row in a hand-made caption file is a copy-paste or
    concatenation mistake; merging it silently would hide that, and the fix is one line.
    """
    seen: dict[tuple, str] = {}
    for where, key in rows:
        if key in seen:
            raise DatasetError(f"{where}: duplicate {what} {key!r}, first at {seen[key]}")
        seen[key] = where


def expect_type(obj: Any, kind: type, where: str) -> Any:
    if not isinstance(obj, kind):
        raise DatasetError(f"{where}: expected a JSON {kind.__name__}, got {type(obj).__name__}")
    return obj


def get_field(entry: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """``entry[key]``, checked to be of ``kind``; errors name the file/line or entry."""
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise DatasetError(
            f"{where}: {key!r} should be {getattr(kind, '__name__', kind)}, got {value!r}"
        )
    return value


def get_any_field(entry: dict, keys: Sequence[str], where: str) -> Any:
    """The value of the first of ``keys`` present (column aliases)."""
    key = next((k for k in keys if k in entry), None)
    if key is None:
        raise DatasetError(
            f"{where}: needs one of the keys/columns {list(keys)}, has {sorted(entry)}"
        )
    return entry[key]


def caption_field(entry: Any, key: str, where: str) -> str:
    return nonempty_text(get_field(entry, key, where), where, key)


def nonempty_text(text: Any, where: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: empty or non-text {what} {text!r}")
    return text.strip()
