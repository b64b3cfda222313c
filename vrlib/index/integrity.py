"""Is an index file what was saved? Checksums, parse errors that name the file, unit rows.

Why apart from :mod:`vrlib.index.store`: a campaign of flipped bytes found an index that used a
damaged ``embeddings.npy`` silently (a video ranked first with cosine 11.34) and numpy's or
pyarrow's bare errors for damaged headers; these checks are what every file of an index passes
on load (and the embeddings on save), whatever writes them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from vrlib.io import sha256_file

#: A stored embedding may be off unit length by this much (float16 storage rounds every value).
NORM_TOLERANCE = 1e-2


class IndexCorruptError(ValueError):
    """A file of an index folder is damaged: it is missing, fails the checksum the manifest
    recorded, does not parse, or holds rows that are not finite unit vectors. ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


def not_unit_rows(embeddings: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Flat row numbers of ``embeddings (..., d)`` that are not finite unit vectors.

    Why: four flipped bytes in ``embeddings.npy`` made a video rank first with cosine 11.34; a
    cosine above 1 is impossible between unit vectors. Read in chunks: no float32 copy of a
    float16 index. A row may be off unit length by :data:`NORM_TOLERANCE` (float16 rounding).
    """
    flat = embeddings.reshape(-1, embeddings.shape[-1])  # (N*m, d)
    bad = []
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk]
        norms = np.sqrt(np.einsum("ij,ij->i", part, part, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            off = ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)  # NaN counts as off
        bad.append(start + np.flatnonzero(off))
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def describe_rows(embeddings: np.ndarray, bad: np.ndarray, limit: int = 3) -> str:
    flat = embeddings.reshape(-1, embeddings.shape[-1])
    norms = [float(np.linalg.norm(flat[r].astype(np.float64))) for r in bad[:limit]]
    shown = ", ".join(
        f"row {r} has norm {n:.4g}" for r, n in zip(bad.tolist(), norms, strict=False)
    )
    return f"{len(bad)} of {len(flat)} rows are not finite unit vectors ({shown})"


def verified(path: Path, sums: dict | None) -> Path:
    """``path``, after checking it against the manifest's SHA-256 (None: an index saved before
    checksums were recorded, read unverified)."""
    if not path.is_file():
        raise IndexCorruptError(path, "missing: the manifest lists it")
    if sums is None:
        return path
    if path.name not in sums:
        raise IndexCorruptError(path, "no checksum for it in manifest.json")
    if sha256_file(path) != sums[path.name]:
        raise IndexCorruptError(
            path,
            "its contents differ from the SHA-256 recorded in manifest.json when the index was "
            "saved (damaged or modified since); rerun `python -m vrlib index` to rebuild it",
        )
    return path


def load_npy(path: Path, sums: dict | None) -> np.ndarray:
    try:
        return np.load(verified(path, sums), allow_pickle=False)
    except IndexCorruptError:
        raise
    except Exception as e:  # any parse failure of a damaged file: name the file
        raise IndexCorruptError(
            path, f"not a readable NumPy array ({type(e).__name__}: {e})"
        ) from None


def read_table(path: Path, sums: dict | None):
    import pandas as pd

    verified(path, sums)
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            table = pd.read_json(path, lines=True, dtype=False)
        if len(table):  # strings that are not UTF-8 fail here, not later in a search
            table["video_id"].str.encode("utf-8"), table["path"].str.encode("utf-8")
    except Exception as e:  # pyarrow, JSON, Unicode and missing-column errors alike
        raise IndexCorruptError(
            path, f"not a readable id table ({type(e).__name__}: {e})"
        ) from None
    if len(table) and (table["row"].to_numpy() != np.arange(len(table))).any():
        raise IndexCorruptError(path, "rows are not 0..N-1 in order")
    return table.drop(columns="row")


def report_damage(error: IndexCorruptError, consequence: str) -> None:
    print(f"warning: {error}; {consequence}", file=sys.stderr, flush=True)
