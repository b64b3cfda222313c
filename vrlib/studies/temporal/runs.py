"""Study 02, running it: each split's features (or pixels), then every setting with every seed.

Why apart from ``temporal.study``: this is the study's machinery (the feature cache, lazy
decoding for end-to-end runs, the one engine ``vrlib.train.fit``), while ``temporal.study``
says what is asked and how it is read. Rows of metrics.json come from ``summary_rows``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vrlib.evaluation.study_cards import renamed, study_card
from vrlib.models.reversal import own_video_order_scores
from vrlib.studies.temporal.settings import Setting, build_head, text_side_options
from vrlib.studies.temporal.study import TEMPORAL_TAG, RunResult, SplitData, TemporalParams
from vrlib.studies.temporal.twins import (
    has_tag,
    reversed_pairs,
    subset_t2v,
    twin_index,
    twin_scores,
    twin_summary,
    video_values,
)
from vrlib.studies.toolkit import METRIC_KEYS, aggregate_seeds, rows_from_metrics
from vrlib.train import CachedPairs, EndToEndPairs, TrainConfig

STUDY = "temporal_ablation"

# ----------------------------------------------------------------------------- data


def requirements(params: TemporalParams, dim: int = 64) -> dict[str, bool]:
    """Which extra inputs the study's heads need: ``tokens`` and ``double_rate`` frames."""
    heads = [build_head(s, dim, params.sampling.n) for s in params.settings()]
    return {
        "tokens": any(getattr(h, "needs_tokens", False) for h in heads),
        "double_rate": any(getattr(h, "needs_double_rate", False) for h in heads),
    }


def study_text_side(params: TemporalParams, encoder: Any, name: str | None = None) -> Any:
    """A fresh text side of the study (``params.text_side``), or the one called ``name``."""
    from vrlib.models import build_text_side

    if name is not None and name != params.text_side["name"]:
        return build_text_side(name, encoder, encoder.embed_dim)
    opts = text_side_options(params.text_side)
    return build_text_side(params.text_side["name"], encoder, encoder.embed_dim, **opts)


def prepare_cached_split(
    params: TemporalParams, split: str, encoder: Any, *, tokens: bool, double_rate: bool
) -> SplitData:
    """Frame (and, if needed, double-rate frame) features and text inputs of ``split``, cached.

    Extraction goes through ``vrlib.studies.common.prepare_split`` and
    ``vrlib.features.extract_text_inputs`` (the feature cache), so a second run of the notebook
    reads everything from disk. The text inputs hold what the study's text side reads (the
    frozen embedding, word tokens for TAB, hidden states for ``last_blocks``); every text side
    of the study (the frozen ablation too) reads from the same dict. ``tokens`` is kept for the
    signature of ``requirements``: word tokens are always among the text inputs.
    """
    from vrlib.features import extract_frame_features, extract_text_inputs
    from vrlib.paths import feature_cache_dir
    from vrlib.studies.common import prepare_split

    prep = prepare_split(
        params.data, split, encoder, params.sampling,
        batch_size=params.encoder.batch_size, cache_dir=params.cache_dir, seed=params.seed,
    )  # fmt: skip
    ds = prep.dataset
    ids = [v.video_id for v in ds.videos]
    frames = prep.features.select(ids).features  # per video (T_i, D)
    cache = params.cache_dir or feature_cache_dir()
    side = study_text_side(params, encoder)
    inputs = extract_text_inputs(
        [c.text for c in ds.captions], encoder, hidden_block=side.hidden_block, cache_dir=cache,
        trim=True,
    )  # fmt: skip
    kw: dict[str, Any] = {}
    if double_rate:
        feats_2x = extract_frame_features(
            ds, encoder, params.double_rate_sampling.config(), cache_dir=cache,
            batch_size=params.encoder.batch_size, on_error="raise", seed=params.seed,
        )  # fmt: skip
        kw["frames_2x"] = feats_2x.select(ids).features
    twin_of = twin_index(ds.videos)
    pairs = CachedPairs(
        frames, inputs["text"], ds.caption_to_video, text_inputs=inputs,
        twin_of=twin_of, **kw,
    )  # fmt: skip
    return SplitData(split, ds, pairs, [tuple(c.tags) for c in ds.captions], twin_of)


class _LazyVideos(Sequence):
    """Per video the sampled frames as uint8 (T, S, S, 3), decoded when asked for.

    Lazy on purpose: MSR-VTT's 9k videos at 12 x 224 x 224 would need ~16 GB in memory, and the
    engine's DataLoader workers (``train.num_workers``) then decode batches in parallel.
    """

    def __init__(self, items: Sequence[Any], sampling: Any, size: int, seed: int) -> None:
        self.items, self.sampling, self.size, self.seed = list(items), sampling, size, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        from vrlib.data.video import probe, read_frames

        path = str(self.items[i].path)
        info = probe(path)
        idx = self.sampling.indices(info.num_frames, info.fps, seed=self.seed)
        return read_frames(path, idx, size=self.size, resize="square")  # (T, S, S, 3)


def decode_split(
    params: TemporalParams, split: str, encoder: Any, *, double_rate: bool
) -> SplitData:
    """``EndToEndPairs`` of ``split`` for ``train.mode: end_to_end`` (pixels and strings).

    Frames are decoded lazily, square at the encoder's input size. Clips with ``start``/``end``
    are decoded over the whole file (the readers used here, MSR-VTT and the embedded world,
    have none). A video that fails to decode raises ``VideoDecodeError`` during training.
    """
    from vrlib.data.datasets import load_dataset

    d = params.data
    kw = {"video_dir": d.video_dir} if d.video_dir else {}
    ds = load_dataset(d.dataset, d.resolve_root(), split, on_error=d.on_error, **kw)
    size = encoder.image_size if isinstance(encoder.image_size, int) else encoder.image_size[0]
    videos = _LazyVideos(ds.videos, params.sampling.config(), size, params.seed)
    videos_2x = None
    if double_rate:
        videos_2x = _LazyVideos(ds.videos, params.double_rate_sampling.config(), size, params.seed)
    captions = [c.text for c in ds.captions]
    pairs = EndToEndPairs(
        videos, captions, ds.caption_to_video, num_frames=params.sampling.n,
        videos_2x=videos_2x, num_frames_2x=2 * params.sampling.n if double_rate else None,
    )  # fmt: skip
    return SplitData(split, ds, pairs, [tuple(c.tags) for c in ds.captions], twin_index(ds.videos))


def prepare_splits(params: TemporalParams, encoder: Any) -> dict[str, SplitData]:
    """``{"train", "val", "test"}`` -> ``SplitData``, cached features or decoded pixels by mode."""
    need = requirements(params, encoder.embed_dim)
    names = {"train": params.train_split, "val": params.val_split, "test": params.test_split}
    if params.train.mode == "end_to_end":
        return {
            k: decode_split(params, s, encoder, double_rate=need["double_rate"])
            for k, s in names.items()
        }
    return {k: prepare_cached_split(params, s, encoder, **need) for k, s in names.items()}


def fresh_encoder(encoder: Any) -> Any:
    """A copy of ``encoder`` with its own weights, for one end-to-end run to fine-tune."""
    new = copy.copy(encoder)
    new.model = copy.deepcopy(encoder.model)
    return new


# ----------------------------------------------------------------------------- training


def train_and_evaluate(
    setting: Setting,
    seed: int,
    train: SplitData,
    val: SplitData,
    test: SplitData,
    cfg: TrainConfig,
    *,
    dim: int,
    num_frames: int,
    encoder_factory: Any = None,
    text_side_factory: Any = None,
    sampling: dict[str, Any] | None = None,
) -> RunResult:
    """Train the head of ``setting`` with ``seed`` on ``train``, select on ``val``, test on ``test``.

    Args:
        cfg: the engine's config; its ``seed`` is replaced by ``seed`` and ``setting.train``
            applied over it.
        encoder_factory: for ``cfg.mode == "end_to_end"``, a callable returning a fresh
            trainable ``ClipEncoder`` (each run fine-tunes its own copy).
        text_side_factory: for cached mode, ``text_side_factory(name)`` returns a fresh text
            side (``name`` None: the study's); None trains with the frozen text embedding.
        sampling: the study's frame sampling; given, the run carries its result card
            (``vrlib.evaluation.study_cards``), which records it.
    """
    from vrlib.metrics import ranks
    from vrlib.train import fit, similarity_matrix

    start = time.perf_counter()
    cfg = cfg.model_copy(update={**setting.train, "seed": seed})
    head = build_head(setting, dim, num_frames, seed=seed)
    encoder = encoder_factory() if cfg.mode == "end_to_end" else None
    side = None
    if cfg.mode == "cached" and text_side_factory is not None:
        torch.manual_seed(seed)
        side = text_side_factory(setting.text)
    parts = [*head.parameters(), *(side.parameters() if side is not None else [])]
    history: list[dict[str, Any]] = []
    best_epoch = None
    # the temperature alone never changes a ranking: a run with nothing else to train is not fit
    if encoder is not None or any(p.requires_grad for p in parts):
        result = fit(head, train.pairs, val.pairs, cfg, encoder=encoder, text_side=side)
        history, best_epoch = result.history, result.best_epoch
        state = result.best_state or result.final_state
        head.load_state_dict(state["model"])
        if encoder is not None and "encoder" in state:
            encoder.model.load_state_dict(state["encoder"])
        if side is not None and "text_side" in state:
            side.load_state_dict(state["text_side"])
    # else nothing can train (meanP with frozen text): evaluated as it is, the zero-shot expert
    device = next(head.parameters(), torch.zeros(0)).device
    sim = similarity_matrix(
        head,
        test.pairs,
        encoder=encoder,
        text_side=side,
        chunk_size=cfg.eval_chunk_size,
        device=device,
    )  # (C, V) fmt: skip
    c2v = test.caption_to_video

    def order_vs_reversed(split: SplitData, forward: torch.Tensor) -> np.ndarray:
        """The twin instrument: each caption's own video forward against its frames reversed."""
        if not isinstance(split.pairs, CachedPairs):  # end_to_end: pixels, not cached features
            return np.full(len(split.caption_to_video), np.nan)
        backward = similarity_matrix(
            head, reversed_pairs(split.pairs), text_side=side,
            chunk_size=cfg.eval_chunk_size, device=device,
        )  # fmt: skip
        return own_video_order_scores(forward, backward, split.caption_to_video)

    train_sim = None
    if cfg.mode == "cached":
        train_sim = similarity_matrix(
            head, train.pairs, encoder=encoder, text_side=side,
            chunk_size=cfg.eval_chunk_size, device=device,
        )  # fmt: skip
    return RunResult(
        setting=setting.name,
        model=setting.model,
        seed=seed,
        history=history,
        best_epoch=best_epoch,
        test=evaluate_test(sim, test),
        twin=twin_summary(sim, test),
        temporal=subset_t2v(sim, c2v, has_tag(test.tags, TEMPORAL_TAG)),
        wall_s=time.perf_counter() - start,
        num_params=sum(p.numel() for p in head.parameters())
        + sum(
            p.numel() for p in (side.parameters() if side is not None else []) if p.requires_grad
        ),
        t2v_ranks=ranks(sim, c2v, direction="t2v"),
        v2t_ranks=ranks(sim, c2v, direction="v2t"),
        twin_score=twin_scores(sim, c2v, test.twin_of),
        reversal_score=order_vs_reversed(test, sim),
        train_twin={
            **twin_summary(train_sim, train),
            "reversal_acc_temporal": _temporal_mean(order_vs_reversed(train, train_sim), train),
        } if train_sim is not None else {},
        text_state=copy.deepcopy(side.state_dict()) if side is not None else None,
        card=None if sampling is None else study_card(
            sim, c2v, dataset=test.dataset.name, split=test.dataset.split, root=test.dataset.root,
            study=STUDY, setting=setting.name, seed=seed, sampling=sampling,
        ),
    )  # fmt: skip


def _temporal_mean(scores: np.ndarray, split: SplitData) -> float:
    """% mean of per-caption order scores over the split's temporal captions, per video first."""
    temporal = has_tag(split.tags, TEMPORAL_TAG)
    if not temporal.any():
        return float("nan")
    return float(100.0 * video_values(scores, split.caption_to_video, temporal).mean())


def evaluate_test(sim: torch.Tensor, test: SplitData) -> dict[str, Any]:
    """``vrlib.metrics.evaluate`` of a (C, V) similarity on the test split (T2V and V2T)."""
    from vrlib.metrics import evaluate

    return evaluate(sim, test.caption_to_video)


def study_train_config(params: TemporalParams, encoder: Any) -> TrainConfig:
    """``params.train`` with the temperature training starts from: ``params.temperature``, or
    with ``"expert"`` the encoder's own (``common.start_temperature``; in end_to_end mode the
    encoder's logit scale itself, which then trains with it)."""
    from vrlib.studies.common import EXPERT, start_temperature

    if params.train.mode == "end_to_end" and params.temperature == EXPERT:
        return params.train.model_copy(update={"temperature": None})
    return params.train.model_copy(
        update={"temperature": start_temperature(params.temperature, encoder)}
    )


def run_all(
    params: TemporalParams,
    splits: dict[str, SplitData],
    *,
    dim: int,
    train: TrainConfig | None = None,
    encoder_factory: Any = None,
    text_side_factory: Any = None,
    progress: bool = True,
) -> list[RunResult]:
    """Every (setting, seed) of ``params``; settings with the same ``run_key`` train once.

    A shared run is reported under each setting name that uses it (e.g. ``tdb+tab-base``,
    ``tab-k5`` and ``tab-w0.5``). ``train``: the config every run starts from
    (:func:`study_train_config`; None: ``params.train`` as it is).
    """
    from tqdm.auto import tqdm

    done: dict[tuple[str, int], RunResult] = {}
    out: list[RunResult] = []
    jobs = [(s, seed) for s in params.settings() for seed in params.seeds_for(s)]
    for setting, seed in tqdm(jobs, desc="runs", disable=not progress):
        key = (setting.run_key(), seed)
        if key not in done:
            done[key] = train_and_evaluate(
                setting, seed, splits["train"], splits["val"], splits["test"], train or params.train,
                dim=dim, num_frames=params.sampling.n, encoder_factory=encoder_factory,
                text_side_factory=text_side_factory, sampling=params.sampling.model_dump(),
            )  # fmt: skip
        out.append(copy.copy(done[key]))
        out[-1].setting = setting.name
        out[-1].card = renamed(out[-1].card, STUDY, setting.name)
    return out


def write_cards(runs: Sequence[RunResult], encoder: Any, params: TemporalParams, out_dir) -> list:
    """The result card of every setting at the first seed, into ``out_dir``: what
    ``reports/leaderboard.md`` lists (the untrained meanP row is the zero-shot expert)."""
    from vrlib.evaluation.study_cards import write_run_cards

    named = ((r.setting, r.card) for r in runs)
    return write_run_cards(named, encoder, params.encoder.model, params.encoder.pretrained, out_dir)


# ----------------------------------------------------------------------------- rows


def seed_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """metrics.json-style rows of every run, one per direction, with its ``seed``."""
    rows = []
    for run in runs:
        rows += rows_from_metrics(run.setting, split, run.test, seed=run.seed)
    return rows


def summary_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """The rows of metrics.json: mean and std over seeds of each metric of ``METRIC_KEYS``."""
    metrics = [m for m in METRIC_KEYS if m != "n"]
    return aggregate_seeds(seed_rows(runs, split), metrics=metrics)


def history_frame(runs: Sequence[RunResult]):
    """Long table of every run's per-epoch history: setting, seed, epoch, train_loss, val R@1..."""
    import pandas as pd

    rows = [{"setting": r.setting, "seed": r.seed, **h} for r in runs for h in r.history]
    return pd.DataFrame(rows)
