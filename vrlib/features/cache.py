"""The resumable on-disk cache of frame and text features.

The cache is keyed by everything that changes its content (DESIGN.md): the run key hashes the
encoder fingerprint, ``sampling.key()``, the encoder image size, the seed and, for strategies
that draw new frames each epoch (``sampling.varies_by_epoch``), the epoch; each video entry
carries a content key hashing its id, path, file size, mtime and clip range. A changed video
therefore misses its entry and is recomputed, while the rest of the cache stays valid.

Cache layout (one folder per run key; several writers can share it)::

    cache_dir/<run key[:20]>/
        manifest_r{rank}of{world}_{writer}.json    shards written by that writer (atomic JSON)
        shard_r{rank}of{world}_{writer}_{i:05d}.pt per-video entries + a SHA-256 of their bytes
        done_r{rank}of{world}.json                 written when that rank finished its share

Shards are written atomically every ``shard_size`` newly encoded videos, and what was encoded is
also written when the run stops on an exception (``KeyboardInterrupt`` included), so a rerun
only encodes what is missing. A shard that cannot be read or whose checksum does not match is
reported by a warning naming it and its videos are recomputed. Each writer owns its manifest,
so ranks never race on a shared file (a single ``manifest.json`` would lose updates when ranks
write at the same time); readers take the union of all manifests. ``{writer}`` is unique per
call (process id and random bits): two extractions into one cache at the same time (two splits,
two notebooks) would otherwise both be rank 0 of 1, write the same shard names and manifest over
each other, and one of them would silently lose its shards and be recomputed next time.

Text features are one file per (encoder, tokens, texts) key: ``cache_dir/text/<key[:20]>.pt``
with a checksum of its tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vrlib.io import atomic_save_torch, read_json, write_json

CACHE_FORMAT = 2  # 2: segment_random draws per (seed, epoch, video)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _run_config(encoder: Any, sampling: Any, seed: int, epoch: int = 0) -> dict[str, Any]:
    config = {
        "format": CACHE_FORMAT,
        "encoder": str(encoder.fingerprint),
        "image_size": encoder.image_size,
        "sampling": sampling.key(),
        "seed": int(seed),
    }
    if sampling.varies_by_epoch:  # other strategies pick the same frames every epoch: one cache
        config["epoch"] = int(epoch)
    return config


def content_key(item: Any) -> str:
    """Hash of what identifies one video's entry: id, path, size, mtime and clip range.

    A file that cannot be stat'ed gets a key that never matches a stored entry, so it is tried
    (and fails with a proper decode error) instead of being served from the cache.
    """
    path = os.path.abspath(item.path)
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError as e:
        size, mtime = -1, f"unreadable: {e}"
    return _sha([item.video_id, path, size, mtime, item.start, item.end])


def _entry_checksum(entry: dict[str, Any]) -> str:
    h = hashlib.sha256(entry["content_key"].encode())
    for name in ("features", "indices", "timestamps"):
        h.update(entry[name].contiguous().numpy().tobytes())
    return h.hexdigest()


class _FrameCache:
    """The shards and manifests of one run key; this instance writes as one writer (rank)."""

    def __init__(
        self, root: Path, key: str, config: dict, rank: int, world_size: int, shard_size: int
    ) -> None:
        self.root = root
        self.key = key
        self.config = config
        self.tag = f"r{rank}of{world_size}"
        self.writer = f"{self.tag}_{os.getpid()}{secrets.token_hex(4)}"
        self.shard_size = shard_size
        self.manifest_path = root / f"manifest_{self.writer}.json"
        self._buffer: list[dict[str, Any]] = []
        self._shards: list[dict[str, Any]] = []
        self._next = 0

    def _read_manifest(self, path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            manifest = read_json(path)
            if manifest.get("key") != self.key or not isinstance(manifest.get("shards"), list):
                raise ValueError("its key or shard list does not match this cache folder")
            return manifest
        except (ValueError, OSError, AttributeError) as e:
            warnings.warn(f"{path}: unreadable manifest ignored ({e})", stacklevel=4)
            return {}

    # -- reading ----------------------------------------------------------------------------

    def lookup(self, wanted: set[str]) -> dict[str, dict[str, Any]]:
        """Load verified entries for the content keys in ``wanted`` (newest shards first)."""
        listed: dict[str, set[str]] = {}
        for path in sorted(self.root.glob("manifest_*.json")):
            for shard in self._read_manifest(path).get("shards", []):
                listed.setdefault(shard["file"], set()).update(shard["content_keys"])
        found: dict[str, dict[str, Any]] = {}
        for name in sorted(listed, key=self._mtime, reverse=True):
            if not (listed[name] & wanted) - found.keys():
                continue
            pending = wanted - found.keys()
            for entry in self._load_shard(self.root / name, pending):
                if entry["content_key"] in wanted:
                    found.setdefault(entry["content_key"], entry)
        return found

    def _mtime(self, name: str) -> int:
        try:
            return (self.root / name).stat().st_mtime_ns
        except OSError:
            return -1

    def _load_shard(self, path: Path, pending: set[str]) -> list[dict[str, Any]]:
        """The shard's entries whose checksum matches.

        An unreadable shard gives a warning; so do entries with a bad checksum that are among
        the ``pending`` content keys (those already found in a newer shard are not news).
        """
        try:
            shard = torch.load(path, map_location="cpu", weights_only=True)
            if shard.get("key") != self.key:
                raise ValueError(f"it belongs to cache key {shard.get('key')!r}")
            good, bad = [], []
            for entry in shard["entries"]:
                ok = _entry_checksum(entry) == entry["checksum"]
                (good if ok else bad).append(entry)
        except Exception as e:  # truncated zip, bad pickle, missing file, wrong structure ...
            warnings.warn(
                f"feature cache shard {path} is damaged ({type(e).__name__}: {e}); "
                "its videos will be recomputed",
                stacklevel=3,
            )
            return []
        bad = [e["video_id"] for e in bad if e["content_key"] in pending]
        if bad:
            warnings.warn(
                f"feature cache shard {path}: checksum mismatch for {len(bad)} video(s) "
                f"({', '.join(map(str, bad[:5]))}); they will be recomputed",
                stacklevel=3,
            )
        return good

    # -- writing ----------------------------------------------------------------------------

    def put(self, entry: dict[str, Any]) -> None:
        self._buffer.append(entry)
        if len(self._buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered entries as one shard, then list it in this writer's manifest."""
        if not self._buffer:
            return
        name = f"shard_{self.writer}_{self._next:05d}.pt"
        atomic_save_torch(self.root / name, {"key": self.key, "entries": self._buffer})
        self._shards = [s for s in self._shards if (self.root / s["file"]).exists()]
        self._shards.append(
            {
                "file": name,
                "video_ids": [e["video_id"] for e in self._buffer],
                "content_keys": [e["content_key"] for e in self._buffer],
            }
        )
        write_json(
            self.manifest_path,
            {"key": self.key, "writer": self.writer, "config": self.config, "shards": self._shards},
        )
        self._next += 1
        self._buffer = []

    def mark_done(self, summary: dict[str, Any]) -> None:
        write_json(self.root / f"done_{self.tag}.json", {"key": self.key, **summary})

    def warn_unfinished_ranks(self) -> None:
        """Warn when an earlier sharded run left ranks without a done marker."""
        seen: dict[int, set[int]] = {}
        for p in self.root.glob("done_r*of*.json"):
            m = re.fullmatch(r"done_r(\d+)of(\d+)\.json", p.name)
            if m and int(m.group(2)) > 1:
                seen.setdefault(int(m.group(2)), set()).add(int(m.group(1)))
        for world, ranks in sorted(seen.items()):
            missing = sorted(set(range(world)) - ranks)
            if missing:
                warnings.warn(
                    f"{self.root}: ranks {missing} of a {world}-rank extraction have no done "
                    "marker; whatever they did not write is encoded now",
                    stacklevel=3,
                )


def _entry(record: dict[str, Any], content_key: str) -> dict[str, Any]:
    entry = {
        "video_id": record["video_id"],
        "content_key": content_key,
        "features": record["features"].float().contiguous(),  # (T, d)
        "indices": torch.as_tensor(record["indices"], dtype=torch.int64),
        "timestamps": torch.as_tensor(record["timestamps"], dtype=torch.float64),
    }
    entry["checksum"] = _entry_checksum(entry)
    return entry


def _text_checksum(tensors: Sequence[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_text_cache(path: Path, key: str, n: int) -> list[torch.Tensor] | None:
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        tensors = list(blob["tensors"])
        if blob.get("key") != key or _text_checksum(tensors) != blob.get("checksum"):
            raise ValueError("key or checksum mismatch")
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"holds {tensors[0].shape[0]} rows, expected {n}")
        return tensors
    except Exception as e:
        warnings.warn(
            f"text feature cache {path} is damaged ({type(e).__name__}: {e}); recomputing",
            stacklevel=3,
        )
        return None
