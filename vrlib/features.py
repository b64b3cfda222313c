"""Frame and text feature extraction with decode/encode overlap and a resumable on-disk cache.

Why: every study starts from the same frozen-encoder frame features, and decoding plus encoding
all videos is by far the slowest step. So it is done once, in one place:

* Decoding runs in ``torch.utils.data.DataLoader`` workers (open each file once with
  :func:`~vrlib.data.video.read_sampled`, pick frame indices with the
  :class:`~vrlib.data.sampling.SamplingConfig`, decode)
  while the main process preprocesses and encodes. Frames of consecutive videos are packed into
  full encoder batches and the output is split back per video, so short videos do not waste
  batch slots. A decode error is caught in the worker and comes back as an error record, so
  ``on_error="skip"`` can list it and ``on_error="raise"`` raises :class:`VideoDecodeError`
  naming the file (a worker traceback would not).
* The cache is keyed by everything that changes its content (DESIGN.md): the run key hashes the
  encoder fingerprint, ``sampling.key()``, the encoder image size and the seed; each video entry
  carries a content key hashing its id, path, file size, mtime and clip range. A changed video
  therefore misses its entry and is recomputed, while the rest of the cache stays valid.

Cache layout (one folder per run key; several writers can share it)::

    cache_dir/<run key[:20]>/
        manifest_r{rank}of{world}.json    shards written by that writer (atomic JSON)
        shard_r{rank}of{world}_{i:05d}.pt per-video entries + a SHA-256 of their tensor bytes
        done_r{rank}of{world}.json        written when that writer finished its share

Shards are written atomically every ``shard_size`` newly encoded videos, and what was encoded is
also written when the run stops on an exception (``KeyboardInterrupt`` included), so a rerun
only encodes what is missing. A shard that cannot be read or whose checksum does not match is
reported by a warning naming it and its videos are recomputed. Each writer owns its manifest,
so ranks never race on a shared file (a single ``manifest.json`` would lose updates when ranks
write at the same time); readers take the union of all manifests.

Scaling beyond one machine: with ``rank``/``world_size`` (default: ``$RANK``/``$WORLD_SIZE``) a
call handles only videos ``i`` with ``i % world_size == rank`` and writes its done marker; a final
call with ``world_size=1`` finds every entry in the cache and encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vrlib.data.video import VideoDecodeError, read_sampled
from vrlib.io import atomic_save_torch, read_json, write_json

CACHE_FORMAT = 1
ON_ERROR = ("raise", "skip")


# ----------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------


@dataclass
class FrameFeatures:
    """Per-video frame features of one extraction run.

    Attributes:
        video_ids: ids of the videos that have features, in dataset order.
        features: per video a float32 CPU tensor ``(T_i, d)``, L2-normalised rows.
        timestamps: per video the time in seconds of each frame in the file, ``(T_i,)``.
        indices: per video the decoded frame indices in the file, ``(T_i,)`` int64.
        skipped: ``(video_id, reason)`` of videos that could not be decoded (``on_error="skip"``).
        key: the run's cache key (hex SHA-256 of encoder, sampling, preprocessing and seed).
        stats: counts of the run: ``videos`` (handled by this call), ``cached``, ``encoded``,
            ``skipped``, ``frames_encoded``.
    """

    video_ids: list[str]
    features: list[torch.Tensor]
    timestamps: list[np.ndarray]
    indices: list[np.ndarray]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    key: str = ""
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def dim(self) -> int | None:
        """Feature dimension ``d`` (None when there are no videos)."""
        return int(self.features[0].shape[1]) if self.features else None

    def padded(self, max_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack into a zero-padded batch for temporal heads.

        Args:
            max_frames: fixed number of time steps ``T``. None: the longest video. A video with
                more frames keeps ``max_frames`` evenly spaced ones (first and last included), so
                that its whole duration is still covered rather than only its beginning.

        Returns:
            ``feats (N, T, d)`` float32 with zeros where padded, and ``mask (N, T)`` bool, True on
            real frames.
        """
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        lengths = [int(f.shape[0]) for f in self.features]
        t = max_frames if max_frames is not None else max(lengths, default=0)
        d = self.dim or 0
        feats = torch.zeros(len(self), t, d, dtype=torch.float32)  # (N, T, d)
        mask = torch.zeros(len(self), t, dtype=torch.bool)  # (N, T)
        for i, f in enumerate(self.features):
            if f.shape[0] > t:
                keep = np.round(np.linspace(0, f.shape[0] - 1, t)).astype(np.int64)
                f = f[torch.from_numpy(keep)]
            feats[i, : f.shape[0]] = f
            mask[i, : f.shape[0]] = True
        return feats, mask

    def select(self, video_ids: Sequence[str]) -> FrameFeatures:
        """The features of ``video_ids``, in that order (KeyError names ids that have none)."""
        where = {v: i for i, v in enumerate(self.video_ids)}
        missing = [v for v in video_ids if v not in where]
        if missing:
            skipped = {v for v, _ in self.skipped}
            why = [f"{v} (skipped)" if v in skipped else v for v in missing[:10]]
            raise KeyError(f"no features for {len(missing)} video id(s): {', '.join(why)}")
        rows = [where[v] for v in video_ids]
        wanted = set(video_ids)
        return replace(
            self,
            video_ids=[self.video_ids[i] for i in rows],
            features=[self.features[i] for i in rows],
            timestamps=[self.timestamps[i] for i in rows],
            indices=[self.indices[i] for i in rows],
            skipped=[s for s in self.skipped if s[0] in wanted],
            stats=dict(self.stats),
        )


# ----------------------------------------------------------------------------------------------
# Decoding (runs in DataLoader workers)
# ----------------------------------------------------------------------------------------------


def _video_seed(seed: int, video_id: str) -> int:
    """A per-video seed that depends only on the run seed and the id (not on order or rank)."""
    digest = hashlib.sha256(f"{seed}:{video_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _clip_range(item: Any, info: Any) -> tuple[int, int]:
    """First frame and frame count of the item's ``[start, end]`` clip (whole file if unset)."""
    if item.start is None and item.end is None:
        return 0, info.num_frames
    start = float(item.start or 0.0)
    end = info.duration if item.end is None else min(float(item.end), info.duration)
    first = max(0, math.floor(start * info.fps))
    last = min(info.num_frames, math.ceil(end * info.fps))
    if last <= first:
        raise VideoDecodeError(
            str(item.path),
            f"clip [{item.start}, {item.end}] s has no frames in a video of "
            f"{info.duration:.3f} s ({info.num_frames} frames at {info.fps:g} fps)",
        )
    return first, last - first


def _decode_item(item: Any, sampling: Any, seed: int) -> dict[str, Any]:
    """Open, sample and decode one video (the file is opened once); errors become a record."""

    def choose(info: Any) -> np.ndarray:
        if not info.fps > 0:
            raise VideoDecodeError(str(item.path), f"invalid frame rate {info.fps!r}")
        first, count = _clip_range(item, info)
        local = sampling.indices(count, info.fps, seed=_video_seed(seed, item.video_id))
        indices = first + np.asarray(local, dtype=np.int64)
        if indices.size == 0:
            raise VideoDecodeError(str(item.path), f"sampling {sampling.key()} chose no frames")
        return indices

    try:
        frames, indices, info = read_sampled(
            item.path, choose, size=sampling.size, resize=sampling.resize
        )
    except VideoDecodeError as e:
        return {"video_id": item.video_id, "path": e.path, "error": e.reason}
    return {
        "video_id": item.video_id,
        "path": str(item.path),
        "error": None,
        "frames": torch.from_numpy(np.ascontiguousarray(frames)),  # (T, H, W, 3) uint8
        "indices": indices,
        "timestamps": indices / info.fps,
    }


class _DecodeDataset(Dataset):
    """One item per video: uint8 frames and their indices, or an error record."""

    def __init__(self, items: Sequence[Any], sampling: Any, seed: int) -> None:
        self.items = list(items)
        self.sampling = sampling
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return _decode_item(self.items[i], self.sampling, self.seed)


def _as_is(sample: Any) -> Any:
    """Collate function that keeps a sample untouched (module level so workers can pickle it)."""
    return sample


def _worker_init(_: int) -> None:
    # Decoding is the worker's whole job; one torch thread each avoids oversubscribing the CPU.
    torch.set_num_threads(1)


def _decode_loader(
    items: Sequence[Any], sampling: Any, seed: int, num_workers: int
) -> Iterator[dict]:
    """Decoded videos in order, produced by ``num_workers`` processes (0: in this process)."""
    if num_workers == 0:
        return (_decode_item(item, sampling, seed) for item in items)
    loader = DataLoader(
        _DecodeDataset(items, sampling, seed),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_is,
        worker_init_fn=_worker_init,
    )
    return iter(loader)


# ----------------------------------------------------------------------------------------------
# Batching frames of several videos into encoder batches
# ----------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    record: dict[str, Any]
    parts: list[torch.Tensor] = field(default_factory=list)
    done: int = 0  # frames of this video already encoded

    @property
    def total(self) -> int:
        return int(self.record["pixels"].shape[0])


class _FrameBatcher:
    """Packs preprocessed frames of consecutive videos into encoder batches of ``batch_size``.

    Records carry ``pixels (T, 3, S, S)``: preprocessing happens per video, before packing,
    because decoded frames of different videos may differ in size and cannot be concatenated.
    ``add`` returns the videos whose frames are all encoded, in the order they were added; a
    video may be split across batches. ``flush`` encodes what is left in one smaller batch.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> None:
        self.encode = encode
        self.batch_size = batch_size
        self._pending: deque[_Pending] = deque()
        self._queued = 0  # frames added but not encoded yet

    def add(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        self._pending.append(_Pending(record))
        self._queued += self._pending[-1].total
        finished: list[dict[str, Any]] = []
        while self._queued >= self.batch_size:
            finished += self._encode_next(self.batch_size)
        return finished

    def flush(self) -> list[dict[str, Any]]:
        return self._encode_next(self._queued) if self._queued else []

    def _encode_next(self, n: int) -> list[dict[str, Any]]:
        pieces, owners, taken = [], [], 0
        for p in self._pending:
            take = min(n - taken, p.total - p.done)
            if take > 0:
                pieces.append(p.record["pixels"][p.done : p.done + take])
                owners.append((p, take))
                taken += take
            if taken == n:
                break
        out = self.encode(torch.cat(pieces))  # (n, 3, S, S) -> (n, d)
        for (p, take), feats in zip(owners, out.split([t for _, t in owners]), strict=True):
            p.parts.append(feats)
            p.done += take
        self._queued -= n
        finished = []
        while self._pending and self._pending[0].done == self._pending[0].total:
            p = self._pending.popleft()
            rec = {k: v for k, v in p.record.items() if k != "pixels"}
            finished.append({**rec, "features": torch.cat(p.parts)})  # (T, d)
        return finished


def _preprocess(encoder: Any, record: dict[str, Any]) -> dict[str, Any]:
    """Replace a record's uint8 ``frames (T, H, W, 3)`` by ``pixels (T, 3, S, S)`` for the encoder."""
    rec = {k: v for k, v in record.items() if k != "frames"}
    with torch.no_grad():
        rec["pixels"] = encoder.preprocess_frames(record["frames"])  # (T, 3, S, S)
    return rec


def _encoder_fn(encoder: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Pixels (N, 3, S, S) -> float32 CPU features (N, d), without autograd."""

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return encoder.encode_preprocessed(pixels).float().cpu()

    return encode


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _run_config(encoder: Any, sampling: Any, seed: int) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "encoder": str(encoder.fingerprint),
        "image_size": encoder.image_size,
        "sampling": sampling.key(),
        "seed": int(seed),
    }


def _content_key(item: Any) -> str:
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
        self.shard_size = shard_size
        self.manifest_path = root / f"manifest_{self.tag}.json"
        self._buffer: list[dict[str, Any]] = []
        self._shards = self._read_manifest(self.manifest_path).get("shards", [])
        used = [int(m.group(1)) for m in map(self._shard_re().fullmatch, self._own_files()) if m]
        self._next = max(used, default=-1) + 1

    def _shard_re(self) -> re.Pattern:
        return re.compile(rf"shard_{self.tag}_(\d+)\.pt")

    def _own_files(self) -> list[str]:
        return [p.name for p in self.root.glob(f"shard_{self.tag}_*.pt")]

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
        name = f"shard_{self.tag}_{self._next:05d}.pt"
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
            {"key": self.key, "writer": self.tag, "config": self.config, "shards": self._shards},
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


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def _check_args(on_error: str, batch_size: int, shard_size: int, num_workers: int) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}; valid: {', '.join(ON_ERROR)}")
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("shard_size", shard_size, 1),
        ("num_workers", num_workers, 0),
    ):
        if int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


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


def extract_frame_features(
    dataset: Any,
    encoder: Any,
    sampling: Any,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 64,
    num_workers: int = 0,
    on_error: Literal["raise", "skip"] = "raise",
    seed: int = 0,
    shard_size: int = 64,
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
) -> FrameFeatures:
    """Encode the sampled frames of every video of ``dataset``, reusing and filling the cache.

    Args:
        dataset: a :class:`~vrlib.data.datasets.RetrievalDataset` (only ``.videos`` is used:
            items with ``video_id``, ``path``, ``start``, ``end``).
        encoder: a :class:`~vrlib.encoders.ClipEncoder` (``preprocess_frames``,
            ``encode_preprocessed``, ``fingerprint``, ``image_size``).
        sampling: a :class:`~vrlib.data.sampling.SamplingConfig`: which frames, decoded at which
            size. Indices are computed within the item's ``[start, end]`` clip.
        cache_dir: root of the feature cache; None disables caching (nothing read or written).
        batch_size: frames per encoder call (frames of several videos are packed together).
        num_workers: decoding processes; 0 decodes in this process (notebooks, tests).
        on_error: ``"raise"`` raises :class:`VideoDecodeError` naming the file; ``"skip"`` lists
            the video with the reason in ``.skipped`` and goes on.
        seed: seeds random sampling strategies; each video gets a seed derived from it and its id.
        shard_size: newly encoded videos per cache shard (the most work a kill can lose).
        progress: show a tqdm progress bar.
        rank: this process's rank; default ``$RANK`` or 0.
        world_size: number of processes sharing the work; default ``$WORLD_SIZE`` or 1.

    Returns:
        :class:`FrameFeatures` for this rank's videos (``i % world_size == rank``), in dataset
        order, skipped videos excluded.

    Raises:
        VideoDecodeError: with ``on_error="raise"``, for the first video that cannot be decoded
            (what was encoded before it is kept in the cache).
        ValueError: a bad ``on_error``, ``batch_size``, ``shard_size``, ``num_workers``, rank or
            world size.
    """
    _check_args(on_error, batch_size, shard_size, num_workers)
    rank, world_size = _resolve_rank(rank, world_size)
    if cache_dir is None and world_size > 1:
        raise ValueError("cache_dir=None with world_size > 1: ranks can only merge via a cache")
    items = [v for i, v in enumerate(dataset.videos) if i % world_size == rank]
    config = _run_config(encoder, sampling, seed)
    key = _sha(config)

    cache = None
    if cache_dir is not None:
        cache = _FrameCache(Path(cache_dir) / key[:20], key, config, rank, world_size, shard_size)
        cache.root.mkdir(parents=True, exist_ok=True)
        if world_size == 1:
            cache.warn_unfinished_ranks()
    content_keys = [_content_key(item) for item in items]
    found = cache.lookup(set(content_keys)) if cache else {}
    todo = [(it, ck) for it, ck in zip(items, content_keys, strict=True) if ck not in found]

    skipped, encoded = _encode_missing(
        todo, encoder, sampling, cache, batch_size, num_workers, on_error, seed, progress
    )
    found.update(encoded)
    stats = {
        "videos": len(items),
        "cached": len(items) - len(todo),
        "encoded": len(encoded),
        "skipped": len(skipped),
        "frames_encoded": sum(int(e["features"].shape[0]) for e in encoded.values()),
    }
    if cache:
        cache.mark_done(
            {"rank": rank, "world_size": world_size, **stats, "skipped_videos": skipped}
        )
    return _assemble(items, content_keys, found, skipped, key, stats)


def _encode_missing(
    todo: list[tuple[Any, str]],
    encoder: Any,
    sampling: Any,
    cache: _FrameCache | None,
    batch_size: int,
    num_workers: int,
    on_error: str,
    seed: int,
    progress: bool,
) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    """Decode and encode the videos of ``todo``; entries are written to the cache as they finish."""
    if not todo:
        return [], {}
    key_of = {it.video_id: ck for it, ck in todo}
    batcher = _FrameBatcher(_encoder_fn(encoder), batch_size)
    skipped: list[tuple[str, str]] = []
    encoded: dict[str, dict[str, Any]] = {}

    def keep(finished: list[dict[str, Any]]) -> None:
        for record in finished:
            entry = _entry(record, key_of[record["video_id"]])
            encoded[entry["content_key"]] = entry
            if cache:
                cache.put(entry)

    bar = tqdm(total=len(todo), desc="frame features", unit="video", disable=not progress)
    try:
        for record in _decode_loader([it for it, _ in todo], sampling, seed, num_workers):
            if record["error"] is not None:
                if on_error == "raise":
                    raise VideoDecodeError(record["path"], record["error"])
                skipped.append((record["video_id"], record["error"]))
                bar.update(1)
                continue
            finished = batcher.add(_preprocess(encoder, record))
            keep(finished)
            bar.update(len(finished))
        finished = batcher.flush()
        keep(finished)
        bar.update(len(finished))
    finally:
        bar.close()
        if cache:
            cache.flush()  # keep what was encoded, also when stopped by an exception or Ctrl-C
    return skipped, encoded


def _assemble(
    items: list[Any],
    content_keys: list[str],
    entries: dict[str, dict[str, Any]],
    skipped: list[tuple[str, str]],
    key: str,
    stats: dict[str, int],
) -> FrameFeatures:
    out = FrameFeatures([], [], [], [], skipped=skipped, key=key, stats=stats)
    for item, ck in zip(items, content_keys, strict=True):
        if ck not in entries:
            continue
        e = entries[ck]
        out.video_ids.append(item.video_id)
        out.features.append(e["features"])
        out.indices.append(e["indices"].numpy())
        out.timestamps.append(e["timestamps"].numpy())
    return out


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------


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


def _encode_texts(
    texts: list[str], encoder: Any, batch_size: int, tokens: bool, progress: bool
) -> list[torch.Tensor]:
    chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    outs: list[Any] = []
    with torch.no_grad():
        for chunk in tqdm(chunks, desc="text features", unit="batch", disable=not progress):
            if tokens:
                tok, mask = encoder.encode_text_tokens(chunk)
                outs.append((tok.float().cpu(), mask.bool().cpu()))
            else:
                outs.append(encoder.encode_text(chunk).float().cpu())
    if not tokens:
        return [torch.cat(outs)]  # (N, d)
    length = max(t.shape[1] for t, _ in outs)
    toks = [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1])) for t, _ in outs]
    masks = [torch.nn.functional.pad(m, (0, length - m.shape[1])) for _, m in outs]
    return [torch.cat(toks), torch.cat(masks)]  # (N, L, d), (N, L)


def extract_text_features(
    texts: Sequence[str],
    encoder: Any,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    tokens: bool = False,
    progress: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Encode captions with the encoder's text tower, cached like frame features.

    Args:
        texts: the captions (a list; a single string is refused, it is almost always a mistake).
        encoder: a :class:`~vrlib.encoders.ClipEncoder`.
        cache_dir: cache root; the file is ``cache_dir/text/<key[:20]>.pt`` with the key hashing
            the encoder fingerprint, ``tokens`` and the SHA-256 of the texts. None: no cache.
        batch_size: captions per encoder call.
        tokens: return per-token features for heads that need them (TAB) instead of one vector.
        progress: show a tqdm progress bar.

    Returns:
        ``(N, d)`` float32 L2-normalised features, or with ``tokens=True`` ``(tokens (N, L, d)``
        float32, ``mask (N, L)`` bool)``.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str (wrap a single caption in a list)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    key = _sha(
        {
            "format": CACHE_FORMAT,
            "encoder": str(encoder.fingerprint),
            "tokens": bool(tokens),
            "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
        }
    )
    path = Path(cache_dir) / "text" / f"{key[:20]}.pt" if cache_dir is not None else None
    tensors = _load_text_cache(path, key, len(texts)) if path else None
    if tensors is None:
        tensors = _encode_texts(texts, encoder, batch_size, tokens, progress)
        if path:
            blob = {"key": key, "tensors": tensors, "checksum": _text_checksum(tensors)}
            atomic_save_torch(path, blob)
    return (tensors[0], tensors[1]) if tokens else tensors[0]
