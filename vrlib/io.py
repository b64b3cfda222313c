"""Atomic file writes and small JSON helpers.

Why: a run killed mid-write must never leave a half-written cache shard, checkpoint or report
that a later run mistakes for a good one. Every writer here writes a temporary file in the
target's directory and renames it into place (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TMP_SUFFIX = ".tmp"
#: A temporary file whose writer cannot be identified counts as abandoned after this long.
STALE_TMP_AGE_S = 3600.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders.

    The file gets the permissions a plain ``open(path, "w")`` would give (``mkstemp`` alone makes
    it private to its owner, which would hide shared caches and reports from other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=_TMP_SUFFIX
    )
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files that killed writers of ``path`` left behind; return them.

    Why: a run killed during ``torch.save`` of a 32 MB checkpoint leaves ``.NAME.*.tmp`` beside it,
    and nothing else would ever remove it. A temporary file is stale when the process id in its
    name (``.NAME.<pid>-<random>.tmp``) is no longer running, or, for a name without a pid (older
    versions) or a pid that was reused, when it is older than :data:`STALE_TMP_AGE_S`. A live
    concurrent writer's file is never deleted.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{_TMP_SUFFIX}"):
        middle = tmp.name[len(path.name) + 2 : -len(_TMP_SUFFIX)]
        pid_text, dash, _ = middle.partition("-")
        try:
            age = time.time() - tmp.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer just renamed it into place
        dead = bool(dash) and pid_text.isdigit() and not _pid_alive(int(pid_text))
        if dead or age > STALE_TMP_AGE_S:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, doing: str) -> Iterator[None]:
    """Hold the lock file ``<path>.lock`` while building ``path`` (across processes).

    Why: two processes building the same world or expert at once crash or overwrite each other's
    half-written files. The second one waits (saying why), then finds the first one's finished
    result and reuses it, so callers check again after acquiring. The lock is released by the
    operating system when its holder dies, so a killed builder never blocks the next one. Within
    one process the lock is re-entrant (a save inside an update takes it again without waiting).
    """
    from filelock import FileLock, Timeout

    lock_path = Path(f"{os.fspath(path)}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, is_singleton=True)  # nested use in one process re-enters it
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"[vrlib] waiting for another process {doing} ({lock_path})", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (keys kept in insertion order, trailing newline)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the finished folder ``src`` to ``dst``, replacing any folder already there.

    Why: a folder built in place (a report, a world) that fails halfway would leave old and new
    files side by side. Built in a sibling folder and swapped in by two renames, ``dst`` only ever
    holds one complete result; the old one is deleted after the swap.
    """
    src, dst = Path(src), Path(dst)
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return dst


def read_utf8(path: str | os.PathLike) -> str:
    """A text file's contents as UTF-8; a leading byte-order mark (Excel's CSV) is dropped.

    Why: a bare ``UnicodeDecodeError`` names neither the file nor the line; annotation files
    exported from spreadsheets or other tools in Latin-1 or cp1252 are common.

    Raises:
        ValueError: bytes that are not UTF-8, naming the file, the line and the byte offset.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 (byte {data[e.start : e.start + 1]!r} at offset {e.start}); "
            "expected a UTF-8 text file: re-save it as UTF-8"
        ) from None


def read_json(path: str | os.PathLike) -> Any:
    """Read UTF-8 JSON, naming the file (and line) in the error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def atomic_save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to a temporary file, then rename into place."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
