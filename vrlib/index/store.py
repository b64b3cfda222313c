"""The pieces of :mod:`vrlib.index` that touch disk: listing a folder, the manifest, save and load.

Export format (what other tools read; README "Indexing your own videos")
    ``embeddings.npy``: a plain NumPy array, ``(N, d)`` (or ``(N, k, d)`` for multi-embedding
    aggregations), float32 or float16, L2-normalised rows; row ``i`` is row ``i`` of
    ``ids.parquet`` (columns ``row, video_id, path, size, mtime_ns``; ``ids.jsonl`` has the
    same fields, one JSON object per line). ``manifest.json`` says how they were made. Kept frame
    features are ``frames.npy (F, d)`` float16, ``frame_times.npy (F,)`` seconds and
    ``frame_offsets.npy (N + 1,)``: video ``i`` owns frames ``offsets[i]:offsets[i + 1]``.

``manifest.json`` also holds the SHA-256 of every other file (``sha256``), its row count and
dimension.

Faults (what a campaign of full disks, kill -9 and flipped bytes found, and what now happens)
    A save writes every file into a sibling folder ``.NAME.saving-<pid>``, the manifest last, and
    swaps it in whole (:func:`vrlib.io.replace_dir`): a full disk or a kill at any point leaves the
    previous index loadable, and a kill between the two renames of the swap is completed by the
    next load or save. Updates and saves hold ``NAME.lock`` (:func:`index_lock`), so two
    ``vrlib index`` runs on one folder do the work once. On load every file is checked against
    its checksum, parse errors name the file, and embeddings must be finite unit rows
    (:mod:`vrlib.index.integrity`); ``vrlib index`` on a damaged index encodes the affected rows
    again. Indexes saved before checksums were recorded load unverified.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vrlib.index.integrity import (
    IndexCorruptError,
    describe_rows,
    load_npy,
    not_unit_rows,
    read_table,
    report_damage,
    verified,
)
from vrlib.io import (
    atomic_write_bytes,
    exclusive,
    read_json,
    replace_dir,
    sha256_file,
    write_json,
)

INDEX_FORMAT = 1
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
TABLES = {"parquet": "ids.parquet", "jsonl": "ids.jsonl"}
FRAME_FILES = ("frames.npy", "frame_times.npy", "frame_offsets.npy")
ANN_FILE = "ann.faiss"
_SAVING, _OLD = "saving", "old"  # sibling folders of a save: see write_index and io.replace_dir


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


# -- saving ---------------------------------------------------------------------------------


def index_lock(folder: Path):
    """Hold ``<folder>.lock`` while updating or saving the index in ``folder``, across processes.

    Why: two ``vrlib index`` runs on one folder both did the whole job and saved over each other.
    The second one now waits (saying so on stdout), then loads the first one's result and finds
    nothing left to do. Readers (``search``) never take it: a save swaps a complete folder in.
    """
    return exclusive(folder, f"updating the index {folder}")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _sibling(folder: Path, kind: str, pid: int) -> Path:
    """``.NAME.saving-<pid>`` (a save in progress) or ``.NAME.old-<pid>`` (what
    :func:`vrlib.io.replace_dir` moves the previous folder to during the swap)."""
    return folder.with_name(f".{folder.name}.{kind}-{pid}")


def _leftovers(folder: Path) -> list[Path]:
    """Complete folders that killed saves left beside ``folder``: new ones first, newest first."""
    found = []
    for kind in (_SAVING, _OLD):
        pattern = f".{glob.escape(folder.name)}.{kind}-*"
        found += sorted(
            (p for p in folder.parent.glob(pattern) if (p / MANIFEST).is_file()),
            key=lambda p: p.stat().st_mtime_ns,
            reverse=True,
        )
    return found


def finish_interrupted_save(folder: Path) -> None:
    """Complete a save killed between the two renames of its swap, then drop what killed saves left.

    Call it holding :func:`index_lock`. With ``folder`` missing, its newest complete sibling (the
    new index if it was finished, else the previous one) is renamed into place.
    """
    if not (folder / MANIFEST).is_file():
        candidates = _leftovers(folder)
        if candidates and (not folder.exists() or not any(folder.iterdir())):
            if folder.exists():
                folder.rmdir()
            os.replace(candidates[0], folder)
            print(f"[vrlib] {folder}: completed a save that was interrupted", file=sys.stderr)
    for kind in (_SAVING, _OLD):
        for path in folder.parent.glob(f".{glob.escape(folder.name)}.{kind}-*"):
            shutil.rmtree(path, ignore_errors=True)


def write_index(index, folder: Path, dtype: str, table_format: str) -> Path:
    """Write ``index`` into ``folder`` (see the module docstring), replacing the index it held.

    Every file goes into the sibling folder ``.NAME.saving-<pid>`` (the manifest last, with the
    SHA-256 of every file), which is then swapped in by :func:`vrlib.io.replace_dir`: a full disk
    or a kill at any point leaves the previous index loadable. The folder belongs to the index:
    a folder that holds other files and no manifest is refused rather than replaced.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    if table_format not in TABLES:
        raise ValueError(f"table_format must be one of {sorted(TABLES)}, got {table_format!r}")
    folder = Path(folder).expanduser()
    bad = not_unit_rows(index.embeddings)
    if len(bad):
        raise ValueError(
            f"refusing to save {folder}: {describe_rows(index.embeddings, bad)}; an index holds "
            "finite, L2-normalised embeddings (divide each row by its norm)"
        )
    with index_lock(folder):
        finish_interrupted_save(folder)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder}: a file, not a folder: choose another path")
        if folder.is_dir() and not (folder / MANIFEST).is_file() and any(folder.iterdir()):
            raise ValueError(
                f"{folder}: not an index folder (no {MANIFEST}) and not empty; saving replaces the "
                "whole folder: choose a new or empty folder"
            )
        stage = _sibling(folder, _SAVING, os.getpid())
        stage.mkdir(parents=True)
        try:
            _write_files(index, stage, dtype, table_format)
            replace_dir(stage, folder)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            old = _sibling(folder, _OLD, os.getpid())
            if old.is_dir() and not folder.exists():  # the swap failed halfway: undo it
                os.replace(old, folder)
            raise
    return folder


def _write_files(index, stage: Path, dtype: str, table_format: str) -> None:
    """Every file of the index into ``stage``, the manifest (with their checksums) last."""
    sums: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        atomic_write_bytes(stage / name, data)
        sums[name] = hashlib.sha256(data).hexdigest()

    put(EMBEDDINGS, _npy_bytes(index.embeddings.astype(dtype)))
    table = index.table.reset_index(drop=True)
    table.insert(0, "row", np.arange(len(table), dtype=np.int64))
    if table_format == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        put(TABLES["parquet"], buf.getvalue())
    else:
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_dict("records")]
        put(TABLES["jsonl"], "".join(lines).encode("utf-8"))
    if index.frames is not None:
        f = index.frames
        for name, array in zip(FRAME_FILES, (f.features, f.times, f.offsets), strict=True):
            put(name, _npy_bytes(array))
    if index._ann is not None:
        index._ann.save(stage / ANN_FILE)
        sums[ANN_FILE] = sha256_file(stage / ANN_FILE)
    manifest = {**index.manifest, "count": len(index), "dim": int(index.embeddings.shape[-1])}
    manifest["keep_frames"] = index.frames is not None
    manifest["files"] = {"embeddings": EMBEDDINGS, "dtype": dtype, "ids": TABLES[table_format]}
    manifest["sha256"] = sums
    write_json(stage / MANIFEST, manifest)


# -- loading --------------------------------------------------------------------------------


def _readable(folder: Path) -> Path:
    """``folder``, or the complete folder a save killed mid-swap left beside it."""
    if (folder / MANIFEST).is_file():
        return folder
    left = _leftovers(folder) if folder.parent.is_dir() else []
    if left:
        return left[0]
    raise FileNotFoundError(
        f"{folder}: not an index folder (no {MANIFEST}); build one with `python -m vrlib index`"
    )


def read_index(folder: Path, repair: bool = False):
    """``(embeddings, table, manifest, frames or None, ann or None)`` of an index folder.

    Every file is checked against the SHA-256 its manifest recorded, parsed with its name in any
    error (:class:`IndexCorruptError`), and the embeddings must be finite unit rows. With
    ``repair``, damage to any file but the manifest is reported on stderr instead of raised: the
    rows it affects come back stale (size -1), so :meth:`VideoIndex.update` encodes them again
    (from the feature cache when it has them); such an index is for updating, not searching.
    """
    from vrlib.index.search import AnnIndex, AnnParams

    folder = _readable(Path(folder).expanduser())
    manifest = read_json(folder / MANIFEST)
    if manifest.get("format") != INDEX_FORMAT:
        raise ValueError(
            f"{folder / MANIFEST}: index format {manifest.get('format')!r}, this vrlib reads {INDEX_FORMAT}"
        )
    files, sums = manifest["files"], manifest.get("sha256")
    table = None
    try:
        table = read_table(folder / files["ids"], sums)
        embeddings, frames = _read_rows(folder, manifest, len(table), sums)
    except IndexCorruptError as e:
        if not repair:
            raise
        which = "every video" if table is None else f"its {len(table)} videos"
        report_damage(e, f"{which} will be encoded again")
        embeddings, table, frames = _stale_rows(manifest, table)
        return embeddings, table, manifest, frames, None
    ann = None
    if (folder / ANN_FILE).is_file():
        try:
            ann = AnnIndex.load(
                verified(folder / ANN_FILE, sums), AnnParams(seed=manifest.get("seed", 0))
            )
        except Exception as e:  # derived data: rebuilt on first use
            named = (
                e
                if isinstance(e, IndexCorruptError)
                else IndexCorruptError(folder / ANN_FILE, str(e))
            )
            report_damage(named, "it is built again on first use")
        else:
            ann = ann if len(ann) == embeddings.reshape(-1, embeddings.shape[-1]).shape[0] else None
    return embeddings, table, manifest, frames, ann


def _read_rows(folder: Path, manifest: dict, n: int, sums: dict | None):
    """``(embeddings, frames or None)``, checked against the ``n`` ids and the manifest."""
    path = folder / manifest["files"]["embeddings"]
    embeddings = load_npy(path, sums)
    dim = manifest.get("dim", embeddings.shape[-1] if embeddings.ndim else None)
    if embeddings.ndim not in (2, 3) or embeddings.dtype.kind != "f" or embeddings.shape[-1] != dim:
        raise IndexCorruptError(
            path, f"a {embeddings.dtype} array of shape {embeddings.shape}; expected (N, {dim})"
        )
    if not len(embeddings) == n == manifest["count"]:
        raise IndexCorruptError(
            folder,
            f"{len(embeddings)} embeddings, {n} ids, manifest says {manifest['count']}: the folder "
            "is incomplete (interrupted save?); save or build again",
        )
    bad = not_unit_rows(embeddings)
    if len(bad):
        raise IndexCorruptError(
            path,
            f"{describe_rows(embeddings, bad)}; rerun `python -m vrlib index` to rebuild them",
        )
    if not manifest.get("keep_frames"):
        return embeddings, None
    arrays = [load_npy(folder / name, sums) for name in FRAME_FILES]
    try:
        frames = FrameStore(*arrays)
    except (ValueError, IndexError) as e:
        raise IndexCorruptError(folder / FRAME_FILES[0], str(e)) from None
    if len(frames.offsets) != n + 1:
        raise IndexCorruptError(
            folder / FRAME_FILES[2], f"{len(frames.offsets)} offsets for {n} ids (expected N + 1)"
        )
    return embeddings, frames


def _stale_rows(manifest: dict, table=None):
    """Placeholders for rows whose files are damaged: ``(embeddings, table, frames)`` with every
    row marked changed (size -1), or no rows at all when the id table itself is damaged."""
    import pandas as pd

    if table is None:
        columns = {"video_id": "str", "path": "str", "size": "int64", "mtime_ns": "int64"}
        table = pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    table = table.assign(size=-1, mtime_ns=-1)
    dim = int(manifest.get("dim") or 0)
    frames = None
    if manifest.get("keep_frames"):
        frames = FrameStore(
            np.zeros((0, dim), np.float16),
            np.zeros(0, np.float32),
            np.zeros(len(table) + 1, np.int64),
        )
    return np.zeros((len(table), dim), np.float32), table, frames
