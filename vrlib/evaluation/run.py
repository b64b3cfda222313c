"""``evaluate_model``: a model, a benchmark split and a named protocol -> a :class:`ResultCard`.

The data flow of every study, once, for any model: the benchmark split (each protocol's split
defined once, missing videos an error or a counted exclusion) -> the preset's frames -> the
feature cache -> the preset's aggregation -> similarity -> both directions under the preset, with
cluster-bootstrap intervals. ``evaluate_embeddings`` and ``evaluate_similarity`` score what a
user brings (embeddings or a similarity matrix computed elsewhere) under the same presets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vrlib.evaluation.benchmarks import dataset_record, load_benchmark
from vrlib.evaluation.card import ResultCard
from vrlib.evaluation.models import (
    embed_frame_encoder,
    embed_texts,
    embed_video_model,
    is_frame_encoder,
    load_model,
    model_record,
)
from vrlib.metrics import evaluate_protocol, get_preset

DEFAULT_INTERVALS = 1000


def evaluate_model(
    model: str | Any,
    pretrained: str | None = None,
    dataset: str = "msrvtt",
    root: str | os.PathLike = ".",
    split: str = "1k-A",
    protocol: str = "clip4clip",
    *,
    dsl: bool = False,
    allow_missing: bool = False,
    video_dir: str | None = None,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    intervals: int = DEFAULT_INTERVALS,
    seed: int = 0,
    world_preset: str = "default",
    world_seed: int = 0,
    progress: bool = True,
) -> ResultCard | None:
    """Score ``model`` on ``dataset``/``split`` under the named ``protocol`` (both directions).

    Under ``torchrun`` the frame extraction is sharded over the ranks (``RANK``/``WORLD_SIZE``)
    and merged on rank 0 through the feature cache; rank 0 returns the card, the others None.

    Args:
        model: a name for :func:`vrlib.evaluation.models.load_model` (open_clip architecture,
            ``xclip``, ``hf-clip``, ``hf-siglip``), or an already built frame encoder or
            :class:`~vrlib.evaluation.models.VideoTextModel`.
        pretrained: weights (tag, checkpoint path, transformers folder, ``expert``, ``random``).
        dataset, root, split: the benchmark (``vrlib.evaluation.benchmarks.BENCHMARKS`` names the
            protocol split of each; other datasets pass the reader's split).
        protocol: a preset name (``vrlib.metrics.PRESETS``).
        dsl: also compute dual-softmax numbers (flagged, never the headline).
        allow_missing: drop missing or undecodable videos, counted on the card, instead of raising.
        video_dir: the videos' folder when not where the dataset's layout expects them.
        device: default CUDA when present.
        cache_dir: the feature cache; None: ``$VRLIB_HOME/features``; ``False``: no cache.
        batch_size: frames per encoder call (frame encoders), videos per call (video models).
        num_workers: decoding processes.
        intervals: bootstrap draws (0: no intervals).
        seed: sampling and bootstrap seed.
        world_preset, world_seed: whose expert ``pretrained="expert"`` means.
        progress: progress bars.
    """
    from vrlib.data.sampling import SamplingConfig
    from vrlib.paths import feature_cache_dir

    preset = get_preset(protocol)
    ds, bench = load_benchmark(dataset, root, split, allow_missing, video_dir)
    listed = len(ds.videos) + len(ds.skipped)
    name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
    encoder = (
        load_model(model, pretrained, device, world_preset, world_seed)
        if isinstance(model, str)
        else model
    )
    cache = feature_cache_dir() if cache_dir is None else (cache_dir or None)
    sampling = SamplingConfig(**preset.sampling)
    on_error = "skip" if allow_missing else "raise"
    if is_frame_encoder(encoder):
        embedded = embed_frame_encoder(
            ds, encoder, sampling, preset.aggregation, cache, on_error, batch_size, num_workers, seed, progress
        )  # fmt: skip
        if embedded is None:  # a rank other than 0 under torchrun: its shard is in the cache
            return None
        videos, ids, failed = embedded
        aggregation = dict(preset.aggregation)
    else:
        videos, ids, failed = embed_video_model(
            ds, encoder, sampling, on_error, seed=seed, progress=progress
        )
        aggregation = {"method": "the model's own", "options": {}}
    if failed:
        ds = ds.drop_videos(failed)
    texts = embed_texts(encoder, [c.text for c in ds.captions], cache, progress)
    row = {vid: i for i, vid in enumerate(ids)}
    order = [row[v.video_id] for v in ds.videos]
    videos = videos[order]
    scorer = getattr(encoder, "score", None)  # X-CLIP: the caption depends on the video
    sim = scorer(texts, videos).numpy() if callable(scorer) else _similarity(texts, videos)
    card = score(
        sim, ds.caption_to_video, preset.name, dsl=dsl, intervals=intervals, seed=seed,
        dataset=dataset_record(ds, split, bench, listed),
        model=model_record(encoder, name, pretrained),
    )  # fmt: skip
    card.protocol["aggregation"] = aggregation
    return card


def _similarity(texts: torch.Tensor, videos: torch.Tensor) -> np.ndarray:
    """``(C, V)`` or, for k embeddings per video, ``(C, V, k)`` dot products."""
    texts, videos = texts.float().cpu(), videos.float().cpu()
    if videos.ndim == 3:  # (V, k, d)
        return torch.einsum("cd,vkd->cvk", texts, videos).numpy()
    return (texts @ videos.T).numpy()  # (C, V)


def score(
    sim: np.ndarray,
    caption_to_video: np.ndarray,
    protocol: str,
    dataset: dict[str, Any],
    model: dict[str, Any],
    dsl: bool = False,
    intervals: int = DEFAULT_INTERVALS,
    seed: int = 0,
) -> ResultCard:
    """Both directions of ``sim`` under ``protocol`` as a card (DSL, when asked, beside it)."""
    from vrlib import __version__

    result = evaluate_protocol(sim, caption_to_video, protocol, intervals=intervals, seed=seed)
    record = dict(result["protocol"]["preset"])
    record["split"] = dataset["split"]
    dsl_metrics = None
    if dsl:
        flagged = evaluate_protocol(
            sim, caption_to_video, protocol, dsl=True, intervals=intervals, seed=seed
        )
        dsl_metrics = {d: flagged[d] for d in ("t2v", "v2t")}
        record["dsl"] = True
    warnings = []
    if not dataset.get("complete", True):
        warnings.append(
            f"partial benchmark: {dataset['videos_evaluated']} videos and {dataset['queries']} "
            f"queries evaluated (protocol: {dataset.get('expected_videos') or 'not pinned'} videos, "
            f"{dataset.get('expected_queries') or 'not pinned'} queries; {dataset['excluded']} "
            "excluded); not comparable with published numbers"
        )
    return ResultCard(
        metrics={d: result[d] for d in ("t2v", "v2t")},
        protocol=record,
        dataset=dataset,
        model=model,
        vrlib_version=__version__,
        dsl_metrics=dsl_metrics,
        warnings=warnings,
    )


def _read_id_lines(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of an id file, stripped."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def _load_ids(path: str | os.PathLike) -> list[str]:
    """Video ids, one per line, each once."""
    ids = _read_id_lines(path)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: ids must be unique")
    return ids


def evaluate_embeddings(
    video_embeddings: str | os.PathLike,
    text_embeddings: str | os.PathLike,
    video_ids: str | os.PathLike,
    text_video_ids: str | os.PathLike,
    protocol: str = "clip4clip",
    name: str = "embeddings",
    dataset: str = "custom",
    split: str = "test",
    dsl: bool = False,
    intervals: int = DEFAULT_INTERVALS,
    seed: int = 0,
) -> ResultCard:
    """Score embeddings computed elsewhere (InternVideo2, UMT, a private model) under a preset.

    Args:
        video_embeddings: ``.npy`` ``(V, d)`` (or ``(V, k, d)``), one row per id of ``video_ids``.
        text_embeddings: ``.npy`` ``(C, d)``, one row per line of ``text_video_ids``.
        video_ids: text file, one video id per line.
        text_video_ids: text file, per caption the id of the video it describes.
        protocol, dsl, intervals, seed: as :func:`evaluate_model`.
        name, dataset, split: what the card calls the model and the data.
    """
    videos = np.load(video_embeddings)
    texts = np.load(text_embeddings)
    vids = _load_ids(video_ids)
    caption_videos = _read_id_lines(text_video_ids)
    if len(vids) != len(videos) or len(caption_videos) != len(texts):
        raise ValueError(
            f"{video_embeddings} has {len(videos)} rows for {len(vids)} ids in {video_ids}; "
            f"{text_embeddings} has {len(texts)} rows for {len(caption_videos)} ids in {text_video_ids}"
        )
    c2v = _caption_to_video(caption_videos, vids, text_video_ids)
    sim = _similarity(torch.from_numpy(texts), torch.from_numpy(videos))
    files = _hashes(video_embeddings, text_embeddings, video_ids, text_video_ids)
    card = score(
        sim, c2v, protocol, dsl=dsl, intervals=intervals, seed=seed,
        dataset=counted_record(dataset, split, len(vids), c2v, files, "(embeddings brought)"),
        model={"name": name, "pretrained": None, "kind": "embeddings", "fingerprint": files[str(video_embeddings)]},
    )  # fmt: skip
    return _brought(card)


def evaluate_similarity(
    similarity: str | os.PathLike,
    text_video_ids: str | os.PathLike,
    video_ids: str | os.PathLike,
    protocol: str = "clip4clip",
    name: str = "similarity",
    dataset: str = "custom",
    split: str = "test",
    dsl: bool = False,
    intervals: int = DEFAULT_INTERVALS,
    seed: int = 0,
) -> ResultCard:
    """Score a ``(C, V)`` (or ``(C, V, k)``) similarity ``.npy`` under a preset; rows follow
    ``text_video_ids`` (each caption's video id), columns ``video_ids``."""
    sim = np.load(similarity)
    vids = _load_ids(video_ids)
    caption_videos = _read_id_lines(text_video_ids)
    if sim.shape[:2] != (len(caption_videos), len(vids)):
        raise ValueError(
            f"{similarity} has shape {sim.shape}; {text_video_ids} and {video_ids} need "
            f"({len(caption_videos)}, {len(vids)})"
        )
    c2v = _caption_to_video(caption_videos, vids, text_video_ids)
    files = _hashes(similarity, text_video_ids, video_ids)
    card = score(
        sim, c2v, protocol, dsl=dsl, intervals=intervals, seed=seed,
        dataset=counted_record(dataset, split, len(vids), c2v, files, "(embeddings brought)"),
        model={"name": name, "pretrained": None, "kind": "similarity", "fingerprint": files[str(similarity)]},
    )  # fmt: skip
    return _brought(card)


def _brought(card: ResultCard) -> ResultCard:
    """Frames and pooling of brought embeddings are the user's: the card says so, and --compare
    names it as a difference from a card whose frames the preset chose."""
    card.protocol["sampling"] = {"strategy": "as brought"}
    card.protocol["aggregation"] = {"method": "as brought", "options": {}}
    return card


def _caption_to_video(caption_videos: list[str], vids: list[str], where: Any) -> np.ndarray:
    index = {v: i for i, v in enumerate(vids)}
    unknown = sorted({v for v in caption_videos if v not in index})
    if unknown:
        raise ValueError(
            f"{where}: {len(unknown)} caption video ids are not video ids, e.g. {unknown[:5]}"
        )
    return np.asarray([index[v] for v in caption_videos], dtype=np.int64)


def _hashes(*paths: Any) -> dict[str, str]:
    from vrlib.io import sha256_file

    return {str(p): sha256_file(p) for p in paths}


def counted_record(
    dataset: str, split: str, videos: int, c2v: np.ndarray, annotations: dict, root: str
) -> dict:
    """A card's dataset record from what was scored (``videos`` and each caption's video), for
    data that no reader loaded here: brought embeddings, and a study's test split."""
    counts = np.bincount(c2v, minlength=videos)
    return {
        "name": dataset, "split": split, "reader_split": split, "root": root,
        "annotations": annotations, "videos_listed": videos, "videos_evaluated": videos,
        "queries": len(c2v), "captions_per_video": {"min": int(counts.min()), "max": int(counts.max())},
        "query_rule": "as given", "excluded": 0, "excluded_videos": [],
        "expected_videos": None, "expected_queries": None, "complete": True,
    }  # fmt: skip


__all__ = [
    "counted_record",
    "evaluate_embeddings",
    "evaluate_model",
    "evaluate_similarity",
    "score",
]
