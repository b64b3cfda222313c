"""The pieces of :mod:`vrlib.index` that touch disk: listing a folder, the manifest, save and load.

Export format (what other tools read; README "Indexing your own videos")
    ``embeddings.npy``: a plain NumPy array, ``(N, d)`` (or ``(N, k, d)`` for multi-embedding
    aggregations), float32 or float16, L2-normalised rows; row ``i`` is row ``i`` of
    ``ids.parquet`` (columns ``row, video_id, path, size, mtime_ns``; ``ids.jsonl`` has the
    same fields, one JSON object per line). ``manifest.json`` says how they were made. Kept frame
    features are ``frames.npy (F, d)`` float16, ``frame_times.npy (F,)`` seconds and
    ``frame_offsets.npy (N + 1,)``: video ``i`` owns frames ``offsets[i]:offsets[i + 1]``.

Every file is written atomically and the manifest last, with the row count and dimension, so a
folder whose files disagree (a run killed between files) is refused on load with the reason.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vrlib.io import atomic_write_bytes, atomic_write_text, read_json, write_json

INDEX_FORMAT = 1
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
TABLES = {"parquet": "ids.parquet", "jsonl": "ids.jsonl"}
FRAME_FILES = ("frames.npy", "frame_times.npy", "frame_offsets.npy")
ANN_FILE = "ann.faiss"


class IndexMismatchError(ValueError):
    """A query encoder whose model or weights differ from those that built the index."""


@dataclass(frozen=True)
class FileEntry:
    """A video file found in the indexed folder."""

    item: Any  # a vrlib.data.datasets.VideoItem
    size: int
    mtime_ns: int


def list_videos(root: str | os.PathLike) -> dict[str, FileEntry]:
    """Every video file under ``root`` (recursively, hidden folders skipped), by relative path."""
    from vrlib.data.datasets import VIDEO_EXTENSIONS, VideoItem

    root = Path(root).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder of videos")
    found: dict[str, FileEntry] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            st = path.stat()
            found[rel.as_posix()] = FileEntry(
                VideoItem(rel.as_posix(), path.resolve()), st.st_size, st.st_mtime_ns
            )
    if not found:
        raise FileNotFoundError(
            f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder"
        )
    return found


class FrameStore:
    """Frame features of every indexed video, concatenated: ``features (F, d)`` float16."""

    def __init__(self, features: np.ndarray, times: np.ndarray, offsets: np.ndarray) -> None:
        if offsets[-1] != len(features) or len(times) != len(features):
            raise ValueError(
                f"frame store: {len(features)} frames, {len(times)} times, offsets end at {offsets[-1]}"
            )
        self.features, self.times, self.offsets = features, times, offsets

    @classmethod
    def empty(cls, dim: int) -> FrameStore:
        return cls(np.zeros((0, dim), np.float16), np.zeros(0, np.float32), np.zeros(1, np.int64))

    @classmethod
    def from_lists(cls, features, times, dim: int | None = None) -> FrameStore:
        """From per-video ``(T_i, d)`` features (numpy or torch) and ``(T_i,)`` times."""
        if not len(features):
            return cls.empty(dim or 0)
        feats = np.concatenate([np.asarray(f, dtype=np.float16) for f in features])  # (F, d)
        lengths = [len(t) for t in times]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(feats, np.concatenate([np.asarray(t, np.float32) for t in times]), offsets)

    def video(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``(T, d)`` features and ``(T,)`` times of the video in ``row``."""
        a, b = self.offsets[row], self.offsets[row + 1]
        return self.features[a:b], self.times[a:b]

    def best_time(self, row: int, query: np.ndarray) -> float | None:
        """Time (s) of the frame of video ``row`` most similar to ``query (d,)``."""
        feats, times = self.video(row)
        if not len(times):
            return None
        return float(times[int(np.argmax(feats.astype(np.float32) @ query))])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_manifest(
    encoder, video_dir: Path | None, sampling, aggregation: dict, keep_frames: bool, seed: int
) -> dict:
    """What an index records about how it was made (dates are set by :func:`stamp`)."""
    from vrlib import __version__

    return {
        "format": INDEX_FORMAT,
        "vrlib_version": __version__,
        "created": _now(),
        "updated": None,
        "model": getattr(encoder, "model_name", None),
        "pretrained": getattr(encoder, "source", None),
        "encoder_fingerprint": getattr(encoder, "fingerprint", None),
        "precision": getattr(encoder, "precision", None),
        "sampling": asdict(sampling) if sampling is not None else None,
        "aggregation": aggregation,
        "seed": seed,
        "keep_frames": keep_frames,
        "video_dir": str(video_dir.expanduser().resolve()) if video_dir is not None else None,
        "count": 0,
        "skipped": [],
    }


def stamp(manifest: dict, count: int) -> None:
    """Record the current size and the time of this change."""
    manifest["count"] = count
    manifest["updated"] = _now()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def write_index(index, folder: Path, dtype: str, table_format: str) -> Path:
    """Write ``index`` into ``folder`` (see the module docstring)."""
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    if table_format not in TABLES:
        raise ValueError(f"table_format must be one of {sorted(TABLES)}, got {table_format!r}")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / EMBEDDINGS, _npy_bytes(index.embeddings.astype(dtype)))
    table = index.table.reset_index(drop=True)
    table.insert(0, "row", np.arange(len(table), dtype=np.int64))
    for other in TABLES.values():
        (folder / other).unlink(missing_ok=True)
    if table_format == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(folder / TABLES["parquet"], buf.getvalue())
    else:
        lines = [json.dumps(r, ensure_ascii=False) for r in table.to_dict("records")]
        atomic_write_text(folder / TABLES["jsonl"], "".join(line + "\n" for line in lines))
    if index.frames is not None:
        f = index.frames
        for name, array in zip(FRAME_FILES, (f.features, f.times, f.offsets), strict=True):
            atomic_write_bytes(folder / name, _npy_bytes(array))
    if index._ann is not None:
        index._ann.save(folder / ANN_FILE)
    else:
        (folder / ANN_FILE).unlink(missing_ok=True)
    manifest = {**index.manifest, "count": len(index), "dim": int(index.embeddings.shape[-1])}
    manifest["keep_frames"] = index.frames is not None
    manifest["files"] = {"embeddings": EMBEDDINGS, "dtype": dtype, "ids": TABLES[table_format]}
    write_json(folder / MANIFEST, manifest)
    return folder


def read_index(folder: Path):
    """``(embeddings, table, manifest, frames or None, ann or None)`` of an index folder."""
    import pandas as pd

    from vrlib.index.search import AnnIndex, AnnParams

    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{folder}: not an index folder (no {MANIFEST}); build one with `python -m vrlib index`"
        )
    manifest = read_json(folder / MANIFEST)
    if manifest.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{folder / MANIFEST}: index format {manifest.get('format')!r}, this vrlib reads {INDEX_FORMAT}"
        )
    files = manifest["files"]
    embeddings = np.load(folder / files["embeddings"], allow_pickle=False)
    ids = folder / files["ids"]
    table = (
        pd.read_parquet(ids)
        if ids.suffix == ".parquet"
        else pd.read_json(ids, lines=True, dtype=False)
    )
    if len(table) and (table["row"].to_numpy() != np.arange(len(table))).any():
        raise ValueError(f"{ids}: rows are not 0..N-1 in order")
    table = table.drop(columns="row") if "row" in table else table
    if not len(embeddings) == len(table) == manifest["count"]:
        raise ValueError(
            f"{folder}: {len(embeddings)} embeddings, {len(table)} ids, manifest says "
            f"{manifest['count']}: the folder is incomplete (interrupted save?); save or build again"
        )
    frames = None
    if all((folder / n).is_file() for n in FRAME_FILES) and manifest.get("keep_frames"):
        frames = FrameStore(*(np.load(folder / n, allow_pickle=False) for n in FRAME_FILES))
        if len(frames.offsets) != len(table) + 1:
            raise ValueError(f"{folder}: frame offsets do not match the {len(table)} ids")
    ann = None
    if (folder / ANN_FILE).is_file():
        ann = AnnIndex.load(folder / ANN_FILE, AnnParams(seed=manifest.get("seed", 0)))
        ann = ann if len(ann) == embeddings.reshape(-1, embeddings.shape[-1]).shape[0] else None
    return embeddings, table, manifest, frames, ann
