"""The extraction pipeline: ``extract_frame_features`` and ``extract_text_features``.

Frames are decoded, preprocessed and encoded (reusing and filling the cache) into a
``FrameFeatures``; captions are encoded into one tensor (or tokens and mask).

Scaling beyond one machine: with ``rank``/``world_size`` (default: :func:`process_rank`, i.e.
``$RANK``/``$WORLD_SIZE`` of torchrun, else ``$SLURM_PROCID``/``$SLURM_NTASKS`` of Slurm) a call
handles only videos ``i`` with ``i % world_size == rank`` and writes its done marker, which names
the videos of that share (:func:`share_done` checks it); a final call with ``world_size=1`` finds
every entry in the cache and encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlib.data.video import VideoDecodeError
from vrlib.features.cache import (
    CACHE_FORMAT,
    _entry,
    _FrameCache,
    _load_text_cache,
    _run_config,
    _sha,
    _text_checksum,
    content_key,
)
from vrlib.features.decode import _decode_loader, _encoder_fn, _FrameBatcher, _preprocess
from vrlib.io import atomic_save_torch

ON_ERROR = ("raise", "skip")


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


def process_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: torchrun's ``RANK``/``WORLD_SIZE``, else Slurm's
    ``SLURM_PROCID``/``SLURM_NTASKS``, else ``(0, 1)``."""
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank_var in os.environ or world_var in os.environ:
            try:
                return int(os.environ.get(rank_var, 0)), int(os.environ.get(world_var, 1))
            except ValueError as e:
                raise ValueError(f"${rank_var}/${world_var} must be integers: {e}") from None
    return 0, 1


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    env_rank, env_world = process_rank() if rank is None or world_size is None else (0, 1)
    rank = env_rank if rank is None else int(rank)
    world_size = env_world if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def share_done(
    dataset: Any,
    encoder: Any,
    sampling: Any,
    cache_dir: str | os.PathLike,
    rank: int,
    world_size: int,
    seed: int = 0,
    epoch: int = 0,
) -> bool:
    """Whether rank ``rank`` of ``world_size`` finished its share of ``dataset`` in the cache.

    True when its done marker exists and names exactly the videos (content keys: id, path, size,
    mtime) of that share: a marker left by an earlier run over other videos does not count.
    """
    items = [v for i, v in enumerate(dataset.videos) if i % world_size == rank]
    key = _sha(_run_config(encoder, sampling, seed, epoch))
    marker = Path(cache_dir) / key[:20] / f"done_r{rank}of{world_size}.json"
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return done.get("key") == key and done.get("share") == _share_digest(items)


def _share_digest(items: Sequence[Any]) -> str:
    return _sha(sorted(content_key(item) for item in items))


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
    epoch: int = 0,
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
        seed: seeds random sampling strategies; each video draws from (seed, epoch, video id).
        shard_size: newly encoded videos per cache shard (the most work a kill can lose).
        progress: show a tqdm progress bar.
        rank: this process's rank; default from :func:`process_rank`.
        world_size: number of processes sharing the work; default from :func:`process_rank`.
        epoch: the training epoch, for strategies that draw new frames each epoch
            (``sampling.varies_by_epoch``, e.g. ``segment_random``); part of the cache key only
            for those.

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
    config = _run_config(encoder, sampling, seed, epoch)
    key = _sha(config)

    cache = None
    if cache_dir is not None:
        cache = _FrameCache(Path(cache_dir) / key[:20], key, config, rank, world_size, shard_size)
        cache.root.mkdir(parents=True, exist_ok=True)
        if world_size == 1:
            cache.warn_unfinished_ranks()
    content_keys = [content_key(item) for item in items]
    found = cache.lookup(set(content_keys)) if cache else {}
    todo = [(it, ck) for it, ck in zip(items, content_keys, strict=True) if ck not in found]

    skipped, encoded = _encode_missing(
        todo, encoder, sampling, cache, batch_size, num_workers, on_error, seed, progress, epoch
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
            {"rank": rank, "world_size": world_size, "share": _share_digest(items), **stats,
             "skipped_videos": skipped}
        )  # fmt: skip
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
    epoch: int = 0,
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
        videos = [it for it, _ in todo]
        for record in _decode_loader(
            videos, sampling, seed, num_workers, _worker_preprocess(encoder), epoch
        ):
            if record["error"] is not None:
                if on_error == "raise":
                    raise VideoDecodeError(record["path"], record["error"])
                batcher.discard(record["video_id"])  # chunks decoded before the error
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


def _worker_preprocess(encoder: Any) -> Any:
    """The encoder's CPU preprocessing for decoding workers, when it encodes on the CPU.

    Why: on the CPU, preprocessing in the main process delays every encoder call by it, while the
    workers idle whenever decoding is cheaper than encoding; on a GPU it is fastest where the
    model is, so it stays in the main process.
    """
    on_cpu = str(getattr(encoder, "device", "cpu")).startswith("cpu")
    return encoder.cpu_preprocessor() if on_cpu and hasattr(encoder, "cpu_preprocessor") else None


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
