"""Study 03's data, shared by both training protocols: the captioners, the labels of the
training videos (captions and CLIPScores of M frames), the frame features and text inputs of the
cached protocol, the test split, and each run's candidate sets behind the ground-truth guard.

Why apart from ``captions.runs`` (the cached protocol) and ``captions.end_to_end``: both read the
same labels and candidate sets, and the guard must stand in front of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from vrlib.studies.captions.study import (
    GT_CAPTIONS,
    GT_DESCRIBER,
    CaptionSelectionParams,
    RunSpec,
    check_training_texts,
)
from vrlib.train import CachedPairs


@dataclass
class TrainData:
    """What every run of the training split shares.

    Attributes:
        dataset: the training split (its captions are read only by the upper bound).
        tables: per captioner label, its ``VideoCaptions`` (M frames, captions, CLIPScores).
        describer: the ``GroundTruthDescriber`` table (upper bound), or None.
        frames_by_epoch: E per-video frame features (segment-random draws).
        pool, pool_inputs: every text a run may train on, and its cached text inputs.
        ground_truth: per video, its ground-truth captions.
    """

    dataset: Any
    tables: dict[str, Any]
    describer: Any
    frames_by_epoch: list[list[Tensor]]
    pool: list[str]
    pool_inputs: dict[str, Tensor]
    ground_truth: list[list[str]]


def load_captioners(params: CaptionSelectionParams, encoder: Any) -> dict[str, Any]:
    """``{label: Captioner}``; world captioners train on first use (cached in ``$VRLIB_HOME``)."""
    from vrlib.captions import load_captioner

    out = {}
    for spec in params.captioners:
        kw = {"decoding": params.decoding, **spec.options}
        if spec.name in ("clipcap-tiny", "blip-tiny"):
            kw.setdefault("preset", params.data.world_preset)
            kw.setdefault("seed", params.data.world_seed)
        if spec.name == "clipcap":
            kw.setdefault("encoder", encoder)
        out[spec.label] = load_captioner(spec.name, **kw)
    return out


def _cache(params: CaptionSelectionParams, what: str) -> Path | None:
    return Path(params.cache_dir) / what if params.cache_dir else None


def prepare_train(
    params: CaptionSelectionParams, encoder: Any, captioners: dict[str, Any], side: nn.Module
) -> TrainData:
    """Caption M frames of every training video with each captioner, extract E frame draws and
    the text inputs of every caption a run may train on (all cached)."""
    from vrlib.captions import GroundTruthDescriber, caption_videos
    from vrlib.data.datasets import load_dataset
    from vrlib.features import extract_frame_features, extract_text_inputs
    from vrlib.paths import feature_cache_dir

    d = params.data
    kw = {"video_dir": d.video_dir} if d.video_dir else {}
    ds = load_dataset(d.dataset, d.resolve_root(), params.train_split, on_error=d.on_error, **kw)
    cache = Path(params.cache_dir) if params.cache_dir else feature_cache_dir()
    frames_by_epoch, skipped = [], {}
    for epoch in range(params.frame_epochs):
        feats = extract_frame_features(
            ds, encoder, params.train_sampling.config(), cache_dir=cache, epoch=epoch,
            batch_size=params.encoder.batch_size, on_error=d.on_error, seed=params.seed,
        )  # fmt: skip
        skipped.update(dict(feats.skipped))
        frames_by_epoch.append(feats)
    ds = ds.drop_videos(sorted(skipped.items())) if skipped else ds
    ids = [v.video_id for v in ds.videos]
    frames_by_epoch = [f.select(ids).features for f in frames_by_epoch]
    label_kw = {"m": params.frames_per_video, "size": params.caption_size}
    tables = {
        label: caption_videos(ds, c, encoder, cache_dir=_cache(params, "captions"), **label_kw)
        for label, c in captioners.items()
    }
    describer = None
    if GT_DESCRIBER in (*params.upper_bounds, *params.end_to_end.upper_bounds):
        describer = caption_videos(
            ds, GroundTruthDescriber(params.seed), encoder, cache_dir=_cache(params, "captions"),
            **label_kw,
        )  # fmt: skip
    ground_truth: list[list[str]] = [[] for _ in ids]
    for c, v in zip(ds.captions, ds.caption_to_video, strict=True):
        ground_truth[int(v)].append(c.text)
    texts = [t for table in tables.values() for caps in table.captions for t in caps]
    if describer is not None:
        texts += [t for caps in describer.captions for t in caps]
    if GT_CAPTIONS in (*params.upper_bounds, *params.end_to_end.upper_bounds):
        texts += [t for caps in ground_truth for t in caps]
    pool = sorted(set(texts))
    inputs = extract_text_inputs(
        pool, encoder, hidden_block=getattr(side, "hidden_block", None), cache_dir=cache
    )
    return TrainData(ds, tables, describer, frames_by_epoch, pool, inputs, ground_truth)


def prepare_test(
    params: CaptionSelectionParams, encoder: Any, side: nn.Module, split: str | None = None
) -> CachedPairs:
    """The test split (or ``split``, e.g. the val split): 10 uniform frames per video,
    ground-truth captions with text inputs, and ``video_shots`` (:func:`video_shots`) and
    ``dataset`` on the returned pairs."""
    from vrlib.features import extract_text_inputs
    from vrlib.paths import feature_cache_dir
    from vrlib.studies.common import prepare_split

    prep = prepare_split(
        params.data, split or params.test_split, encoder, params.test_sampling,
        batch_size=params.encoder.batch_size, cache_dir=params.cache_dir, seed=params.seed,
    )  # fmt: skip
    ds = prep.dataset
    frames = prep.features.select([v.video_id for v in ds.videos]).features
    texts = [c.text for c in ds.captions]
    cache = Path(params.cache_dir) if params.cache_dir else feature_cache_dir()
    inputs = extract_text_inputs(
        texts, encoder, hidden_block=getattr(side, "hidden_block", None), cache_dir=cache
    )
    pairs = CachedPairs(frames, prep.text, ds.caption_to_video, text_inputs=inputs)
    pairs.video_shots = video_shots(ds.videos)  # the single- vs multi-shot reading's subsets
    pairs.dataset = ds  # the end-to-end protocol decodes the same videos, captions in this order
    return pairs


def video_events(videos: Sequence[Any]) -> list[list[dict[str, Any]]]:
    """Each video's annotated events (``meta["events"]``, one per shot in the embedded world),
    ``[]`` where a video has none (real data)."""
    return [(getattr(v, "meta", None) or {}).get("events") or [] for v in videos]


def video_shots(videos: Sequence[Any]) -> np.ndarray:
    """``(V,)`` the number of shots of each video (:func:`video_events`), 0 where unknown."""
    return np.array([len(events) for events in video_events(videos)])


def selection_for(spec: RunSpec, data: TrainData) -> Any:
    """The candidate set of every training video for ``spec`` (a ``vrlib.captions.Selection``)."""
    from vrlib.captions import Selection, select, stack

    if spec.rule == GT_CAPTIONS:
        idx = [np.arange(len(g)) for g in data.ground_truth]
        ids = [v.video_id for v in data.dataset.videos]
        return Selection(GT_CAPTIONS, 0, ids, idx, [list(g) for g in data.ground_truth])
    if spec.rule == GT_DESCRIBER:
        sel = select(stack([data.describer]), "rand_top_k", spec.k)
        sel.rule = GT_DESCRIBER
        return sel
    return select(stack([data.tables[label] for label in spec.captioners]), spec.rule, spec.k)


def produced_captions(data: TrainData) -> list[list[str]]:
    """Per video, every caption the study's captioners wrote (what a run may train on)."""
    n = len(data.dataset.videos)
    return [[t for table in data.tables.values() for t in table.captions[v]] for v in range(n)]


def guarded_selection(spec: RunSpec, data: TrainData) -> Any:
    """:func:`selection_for` after the no-ground-truth guard (``study.check_training_texts``):
    both protocols train on what this returns.

    Raises:
        GroundTruthInTraining: a candidate text of a non-upper-bound run is not a captioner's.
    """
    sel = selection_for(spec, data)
    check_training_texts(
        sel.captions, produced_captions(data), data.ground_truth, upper_bound=spec.is_upper_bound
    )
    return sel
