"""Study 02 — does modelling time help? CLIP2Video's ablations (Fang et al. 2021, Tables 1 and 2).

Every temporal head of ``vrlib.models`` is trained by the one engine (``vrlib.train.fit``) on
frame and caption features of a frozen image-text encoder, cached once per split, then
evaluated on the test split with ``vrlib.metrics.evaluate`` (T2V and V2T). Settings, named as
in metrics.json and in ``vrlib.papers``:

- Table 1: one setting per head, named by the head (``meanP``, ``seqTransf``, ``tdb-sub``,
  ``tdb-mlp``, ``tdb-all``, ``tdb``, ``tdb+tab-base``, ``tdb+tab-temporal``,
  ``tdb+tab-transformer``, ``tdb+tab-tdb``);
- Table 2: ``tab-k{K}`` (K shared centers) and ``tab-w{w}`` (weight of the global similarity)
  on ``sweep_model`` (``tdb+tab-base``, as in the paper). ``tab-k5`` and ``tab-w0.5`` are the
  same configuration as ``tdb+tab-base`` and are trained once (``run_key``).

Every setting is trained with several seeds (model init and batch order); rows report the mean
over seeds and, beside each metric, ``<metric>_std`` (sample standard deviation, ddof=1; 0 for
a single seed).

The twin analysis uses what the embedded world was built to contain: videos with a *reversed
twin* (the same frames played backwards, captions with the opposite order or direction). For a
caption of such a video, an order-blind head can only score its video and the twin equally;
``twin_pairwise_accuracy`` counts how often the caption's own video scores above its twin
(ties 1/2). ``subset_t2v`` gives T2V retrieval on the captions tagged ``temporal`` (those
whose truth depends on order or direction).

What differs from the paper, and why (also in the notebook):

- cached mode freezes the image-text encoder, so ``meanP`` has no parameter that changes a
  ranking (only the loss temperature trains): it is the frozen expert's mean pooling, the same
  for every seed. The paper fine-tunes CLIP for every row of Table 1.
- with ``train.mode: end_to_end`` (a GPU and real data, see ``msrvtt-9k.yaml``) the encoder is
  fine-tuned with the head, as in the paper; frames are then decoded once per split and kept
  in memory as uint8 pixels (``decode_split``).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from vrlib.report import METRIC_KEYS, rows_from_metrics
from vrlib.studies import register_study
from vrlib.studies.common import DataParams, EncoderParams, SamplingParams, Strict
from vrlib.train import CachedPairs, EndToEndPairs, TrainConfig

# The paper's Table 1, in its order (names as registered in vrlib.models.MODELS).
TABLE1_MODELS = (
    "meanP",
    "seqTransf",
    "tdb-sub",
    "tdb-mlp",
    "tdb-all",
    "tdb",
    "tdb+tab-base",
    "tdb+tab-temporal",
    "tdb+tab-transformer",
    "tdb+tab-tdb",
)
TEMPORAL_TAG = "temporal"

# Defaults chosen for the embedded default world on 2 CPU cores (see parameters/.../default.yaml).
DEFAULT_TRAIN = TrainConfig(
    epochs=3,
    batch_size=128,
    lr=1e-3,
    warmup=0.1,
    sampling="one_caption_per_video",
    progress=False,
    eval_chunk_size=512,
)


@register_study(
    "temporal_ablation",
    "02_temporal_ablation.ipynb",
    "02 — Temporal modelling: TDB and TAB (Fang 2021, CLIP2Video)",
)
class TemporalParams(Strict):
    """Parameters of study 02 (``parameters/temporal_ablation/*.yaml``).

    ``train`` is the engine's own ``TrainConfig`` (unknown keys rejected there, by name), except
    ``seed``, which comes from ``seeds`` (one run per seed), and ``checkpoint_dir``, which the
    study does not use (runs are short and kept in memory).
    """

    seed: int = 0  # feature extraction and the report; training seeds are ``seeds``
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    data: DataParams = DataParams()
    encoder: EncoderParams = EncoderParams()
    sampling: SamplingParams = SamplingParams(strategy="uniform", n=12)
    double_rate_sampling: SamplingParams = SamplingParams(strategy="double_rate", n=12)
    models: list[str] = Field(default_factory=lambda: list(TABLE1_MODELS), min_length=1)
    model_config_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sweep_model: str = "tdb+tab-base"
    centers: list[int] = Field(default_factory=lambda: [4, 5, 6, 7])
    weights: list[float] = Field(default_factory=lambda: [0.4, 0.5, 0.6, 0.7])
    sweep_seeds: list[int] | None = None  # None: the same as ``seeds``
    train: TrainConfig = DEFAULT_TRAIN
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    cache_dir: str | None = None

    @field_validator("train", mode="before")
    @classmethod
    def _train_over_defaults(cls, v: Any) -> Any:
        """A partial ``train:`` section overrides the study's defaults, not the engine's."""
        if not isinstance(v, dict):
            return v
        for bad, why in (
            ("seed", "set seeds: [...] instead"),
            ("checkpoint_dir", "runs stay in memory"),
        ):
            if bad in v:
                raise ValueError(f"train.{bad} is set by the study ({why})")
        return TrainConfig.model_validate({**DEFAULT_TRAIN.model_dump(exclude_unset=True), **v})

    @field_validator("seeds", "sweep_seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @field_validator("centers")
    @classmethod
    def _positive_centers(cls, v: list[int]) -> list[int]:
        bad = [k for k in v if k < 1]
        if bad:
            raise ValueError(f"centers must be >= 1, got {bad}")
        return v

    @field_validator("weights")
    @classmethod
    def _unit_weights(cls, v: list[float]) -> list[float]:
        bad = [w for w in v if not 0.0 <= w <= 1.0]
        if bad:
            raise ValueError(f"weights must be in [0, 1], got {bad}")
        return v

    @model_validator(mode="after")
    def _check(self) -> TemporalParams:
        from vrlib.models import MODELS

        names = [*self.models, self.sweep_model, *self.model_config_overrides]
        unknown = sorted({n for n in names if n not in MODELS})
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; valid: {MODELS.names()}")
        for name, cfg in self.model_config_overrides.items():
            fixed = sorted({"dim", "num_frames"} & set(cfg))
            if fixed:
                raise ValueError(
                    f"model_config_overrides.{name}: {fixed} come from the encoder and sampling.n"
                )
        for setting in self.settings():  # build each head once, small, to reject bad config keys
            try:
                build_head(setting, dim=64, num_frames=self.sampling.n)
            except (TypeError, ValueError) as err:
                raise ValueError(f"setting {setting.name!r}: {err}") from None
        return self

    def settings(self) -> list[Setting]:
        """Table 1 settings (one per model) then Table 2's (``tab-k{K}``, ``tab-w{w}``)."""
        table1 = [Setting(m, m, dict(self.model_config_overrides.get(m, {}))) for m in self.models]
        base = dict(self.model_config_overrides.get(self.sweep_model, {}))
        ks = [Setting(f"tab-k{k}", self.sweep_model, {**base, "centers": k}) for k in self.centers]
        ws = [Setting(f"tab-w{w:g}", self.sweep_model, {**base, "w": w}) for w in self.weights]
        return table1 + ks + ws

    def seeds_for(self, setting: Setting) -> list[int]:
        """Training seeds of ``setting``: ``sweep_seeds`` for Table 2 settings, else ``seeds``."""
        if setting.name.startswith("tab-") and self.sweep_seeds is not None:
            return list(self.sweep_seeds)
        return list(self.seeds)


@dataclass(frozen=True)
class Setting:
    """One row of a table: its name, the head it builds and the head's config keys."""

    name: str
    model: str
    config: dict[str, Any] = field(default_factory=dict, hash=False)

    def run_key(self) -> str:
        """Identity of what is trained: settings with the same head and config share runs.

        Keys equal to the head's defaults are dropped, so ``tab-k5`` (centers=5) is the same run
        as ``tdb+tab-base``.
        """
        defaults = _head_defaults(self.model)
        cfg = {k: v for k, v in self.config.items() if defaults.get(k, object()) != v}
        return f"{self.model}|{json.dumps(cfg, sort_keys=True)}"


@functools.cache
def _head_defaults(model: str) -> dict[str, Any]:
    """The config a head is built with when given no keys (dim/num_frames excluded)."""
    import dataclasses

    head = build_head(Setting(model, model), dim=64, num_frames=2)
    cfg = dataclasses.asdict(head.config)
    return {k: v for k, v in cfg.items() if k not in ("dim", "num_frames", "heads")}


def build_head(setting: Setting, dim: int, num_frames: int, seed: int | None = None):
    """The head of ``setting`` for features of size ``dim`` (init drawn from ``seed`` if given)."""
    from vrlib.models import build_model

    if seed is not None:
        torch.manual_seed(seed)
    return build_model(setting.model, dim=dim, num_frames=num_frames, **setting.config)


# ----------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """One split, ready for training and evaluation.

    Attributes:
        split: its name.
        dataset: the ``RetrievalDataset`` (decode failures dropped, listed in ``.skipped``).
        pairs: ``CachedPairs`` (cached mode) or ``EndToEndPairs`` (end-to-end mode).
        tags: per caption, its tags (``()`` for datasets without tags).
        twin_of: ``(V,)`` int64, index of each video's reversed twin in this split, -1 if none.
    """

    split: str
    dataset: Any
    pairs: CachedPairs | EndToEndPairs
    tags: list[tuple[str, ...]]
    twin_of: np.ndarray

    @property
    def caption_to_video(self) -> np.ndarray:
        return np.asarray(self.dataset.caption_to_video)


def twin_index(videos: Sequence[Any]) -> np.ndarray:
    """``(V,)`` index of each video's reversed twin among ``videos``, -1 where it has none here.

    Twins are read from ``meta["reversed_of"]`` (``vrlib.data.synthetic``) in either direction;
    a twin in another split does not count.
    """
    where = {v.video_id: i for i, v in enumerate(videos)}
    out = np.full(len(videos), -1, dtype=np.int64)
    for i, v in enumerate(videos):
        other = (getattr(v, "meta", None) or {}).get("reversed_of")
        if other is not None and other in where:
            j = where[other]
            out[i], out[j] = j, i
    return out


def requirements(params: TemporalParams, dim: int = 64) -> dict[str, bool]:
    """Which extra inputs the study's heads need: ``tokens`` and ``double_rate`` frames."""
    heads = [build_head(s, dim, params.sampling.n) for s in params.settings()]
    return {
        "tokens": any(getattr(h, "needs_tokens", False) for h in heads),
        "double_rate": any(getattr(h, "needs_double_rate", False) for h in heads),
    }


def prepare_cached_split(
    params: TemporalParams, split: str, encoder: Any, *, tokens: bool, double_rate: bool
) -> SplitData:
    """Frame (and, if needed, double-rate frame and word-token) features of ``split``, cached.

    Extraction goes through ``vrlib.studies.common.prepare_split`` (the feature cache), so a
    second run of the notebook reads everything from disk.
    """
    from vrlib.features import extract_frame_features, extract_text_features
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
    kw: dict[str, Any] = {}
    if tokens:
        texts = [c.text for c in ds.captions]
        kw["tokens"], kw["token_mask"] = extract_text_features(
            texts, encoder, cache_dir=cache, tokens=True
        )  # (C, L, D), (C, L)
    if double_rate:
        feats_2x = extract_frame_features(
            ds, encoder, params.double_rate_sampling.config(), cache_dir=cache,
            batch_size=params.encoder.batch_size, on_error="raise", seed=params.seed,
        )  # fmt: skip
        kw["frames_2x"] = feats_2x.select(ids).features
    pairs = CachedPairs(frames, prep.text, ds.caption_to_video, **kw)
    return SplitData(split, ds, pairs, [tuple(c.tags) for c in ds.captions], twin_index(ds.videos))


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


def twin_embedding_gap(split: SplitData, dim: int) -> float:
    """Largest distance between the ``meanP`` embeddings of a test video and its reversed twin.

    0.0 means mean pooling cannot tell any twin pair apart (then its pairwise accuracy is
    exactly 50%); a small positive value says the sampled frames of a twin are not exactly the
    original's in reverse (sampling positions, lossy re-encoding) — nan without twins.
    """
    if not isinstance(split.pairs, CachedPairs) or not (split.twin_of >= 0).any():
        return float("nan")
    head = build_head(Setting("meanP", "meanP"), dim, split.pairs.frames.shape[1])
    emb = head.encode_video(split.pairs.frames, split.pairs.mask)  # (V, D)
    has = torch.from_numpy(split.twin_of >= 0)
    other = torch.from_numpy(np.where(split.twin_of >= 0, split.twin_of, 0))
    return float((emb[has] - emb[other[has]]).norm(dim=-1).max())


# ----------------------------------------------------------------------------- training


@dataclass
class RunResult:
    """One (setting, seed): its per-epoch history and its test evaluation.

    ``test`` is ``vrlib.metrics.evaluate``'s result on the test split with the weights of the
    best validation epoch (``train.select_metric``); ``twin`` and ``temporal`` come from
    ``twin_pairwise_accuracy`` and ``subset_t2v`` on the same similarity matrix.
    """

    setting: str
    model: str
    seed: int
    history: list[dict[str, Any]]
    best_epoch: int | None
    test: dict[str, Any]
    twin: dict[str, float]
    temporal: dict[str, float]
    wall_s: float
    num_params: int


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
) -> RunResult:
    """Train the head of ``setting`` with ``seed`` on ``train``, select on ``val``, test on ``test``.

    Args:
        cfg: the engine's config; its ``seed`` is replaced by ``seed``.
        encoder_factory: for ``cfg.mode == "end_to_end"``, a callable returning a fresh
            trainable ``ClipEncoder`` (each run fine-tunes its own copy).
    """
    from vrlib.train import fit, similarity_matrix

    start = time.perf_counter()
    cfg = cfg.model_copy(update={"seed": seed})
    head = build_head(setting, dim, num_frames, seed=seed)
    encoder = encoder_factory() if cfg.mode == "end_to_end" else None
    result = fit(head, train.pairs, val.pairs, cfg, encoder=encoder)
    state = result.best_state or result.final_state
    head.load_state_dict(state["model"])
    if encoder is not None and "encoder" in state:
        encoder.model.load_state_dict(state["encoder"])
    device = next(head.parameters(), torch.zeros(0)).device
    sim = similarity_matrix(
        head, test.pairs, encoder=encoder, chunk_size=cfg.eval_chunk_size, device=device
    )  # (C, V)
    return RunResult(
        setting=setting.name,
        model=setting.model,
        seed=seed,
        history=result.history,
        best_epoch=result.best_epoch,
        test=evaluate_test(sim, test),
        twin=twin_summary(sim, test),
        temporal=subset_t2v(sim, test.caption_to_video, _has_tag(test.tags, TEMPORAL_TAG)),
        wall_s=time.perf_counter() - start,
        num_params=sum(p.numel() for p in head.parameters()),
    )


def evaluate_test(sim: torch.Tensor, test: SplitData) -> dict[str, Any]:
    """``vrlib.metrics.evaluate`` of a (C, V) similarity on the test split (T2V and V2T)."""
    from vrlib.metrics import evaluate

    return evaluate(sim, test.caption_to_video)


def run_all(
    params: TemporalParams,
    splits: dict[str, SplitData],
    *,
    dim: int,
    encoder_factory: Any = None,
    progress: bool = True,
) -> list[RunResult]:
    """Every (setting, seed) of ``params``; settings with the same ``run_key`` train once.

    A shared run is reported under each setting name that uses it (e.g. ``tdb+tab-base``,
    ``tab-k5`` and ``tab-w0.5``).
    """
    from tqdm.auto import tqdm

    done: dict[tuple[str, int], RunResult] = {}
    out: list[RunResult] = []
    jobs = [(s, seed) for s in params.settings() for seed in params.seeds_for(s)]
    for setting, seed in tqdm(jobs, desc="runs", disable=not progress):
        key = (setting.run_key(), seed)
        if key not in done:
            done[key] = train_and_evaluate(
                setting, seed, splits["train"], splits["val"], splits["test"], params.train,
                dim=dim, num_frames=params.sampling.n, encoder_factory=encoder_factory,
            )  # fmt: skip
        out.append(copy.copy(done[key]))
        out[-1].setting = setting.name
    return out


# ----------------------------------------------------------------------------- analysis


def twin_pairwise_accuracy(
    sim: Any, caption_to_video: Any, twin_of: Any, caption_mask: Any = None
) -> tuple[float, int]:
    """How often a caption scores its own video above the video's reversed twin.

    Args:
        sim: (C, V) similarities, captions x videos.
        caption_to_video: (C,) video of each caption.
        twin_of: (V,) index of each video's twin, -1 where it has none.
        caption_mask: optional (C,) bool, captions to consider (e.g. those tagged temporal).

    Returns:
        ``(accuracy, n)``: the mean over the ``n`` considered captions whose video has a twin of
        1 (own video strictly higher), 1/2 (exact tie) or 0; ``nan`` when ``n`` is 0. An
        order-blind scorer that gives a video and its twin the same embedding scores exactly 0.5.
    """
    sim = torch.as_tensor(sim)
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    twin = torch.as_tensor(np.asarray(twin_of), dtype=torch.long)
    if sim.ndim != 2 or sim.shape[0] != len(c2v) or sim.shape[1] != len(twin):
        raise ValueError(
            f"sim {tuple(sim.shape)} must be (C, V) = ({len(c2v)}, {len(twin)}) "
            "to match caption_to_video and twin_of"
        )
    keep = twin[c2v] >= 0  # (C,)
    if caption_mask is not None:
        keep &= torch.as_tensor(np.asarray(caption_mask), dtype=torch.bool)
    rows = keep.nonzero().flatten()
    if len(rows) == 0:
        return float("nan"), 0
    own = sim[rows, c2v[rows]]
    other = sim[rows, twin[c2v[rows]]]
    score = (own > other).double() + 0.5 * (own == other).double()
    return float(score.mean()), len(rows)


def subset_t2v(sim: Any, caption_to_video: Any, caption_mask: Any) -> dict[str, float]:
    """T2V metrics of the captions in ``caption_mask`` against all videos (R@1, R@5, MdR, n).

    ``n`` is 0 and the metrics are nan when no caption is selected.
    """
    from vrlib.metrics import ranks, summarize

    mask = np.asarray(caption_mask, dtype=bool)
    if not mask.any():
        return {"R@1": float("nan"), "R@5": float("nan"), "MdR": float("nan"), "n": 0}
    sim = torch.as_tensor(sim)[torch.from_numpy(mask)]
    r = ranks(sim, np.asarray(caption_to_video)[mask], direction="t2v")
    s = summarize(r)
    return {
        "R@1": float(s["R@1"]),
        "R@5": float(s["R@5"]),
        "MdR": float(s["MdR"]),
        "n": int(mask.sum()),
    }


def _has_tag(tags: Sequence[Sequence[str]], tag: str) -> np.ndarray:
    return np.array([tag in t for t in tags], dtype=bool)


def twin_summary(sim: Any, split: SplitData) -> dict[str, float]:
    """Twin pairwise accuracy on all captions of twinned videos and on the temporal ones."""
    acc_all, n_all = twin_pairwise_accuracy(sim, split.caption_to_video, split.twin_of)
    acc_t, n_t = twin_pairwise_accuracy(
        sim, split.caption_to_video, split.twin_of, _has_tag(split.tags, TEMPORAL_TAG)
    )
    return {
        "twin_acc": 100.0 * acc_all,
        "twin_n": n_all,
        "twin_acc_temporal": 100.0 * acc_t,
        "twin_n_temporal": n_t,
        "twin_pairs": int((split.twin_of >= 0).sum() // 2),
    }


# ----------------------------------------------------------------------------- aggregation


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value); nans are ignored."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def aggregate_seeds(
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("setting", "split", "direction"),
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per-seed rows -> one row per ``keys`` group with each metric's mean and ``<metric>_std``.

    Args:
        rows: dicts with the ``keys``, a ``seed`` and numeric metrics.
        metrics: which fields to aggregate; default: every numeric field but ``seed`` and ``n``
            (``n``, the number of queries, must agree across seeds and is kept as is).

    Returns:
        Rows in first-seen order of their group: the keys, ``n`` (when present), ``n_seeds``,
        then ``metric`` and ``metric_std`` for each metric.

    Raises:
        ValueError: a group lists one seed twice, or its rows disagree on ``n``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in groups.items():
        seeds = [r.get("seed") for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"group {key} has repeated seeds {seeds}")
        names = metrics or [
            k for k, v in group[0].items()
            if k not in (*keys, "seed", "n") and isinstance(v, int | float) and not isinstance(v, bool)
        ]  # fmt: skip
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        if "n" in group[0]:
            ns = {r["n"] for r in group}
            if len(ns) > 1:
                raise ValueError(f"group {key}: rows disagree on n ({sorted(ns)})")
            row["n"] = group[0]["n"]
        row["n_seeds"] = len(group)
        for m in names:
            row[m], row[f"{m}_std"] = _mean_std([r[m] for r in group])
        out.append(row)
    return out


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


def twin_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per setting: twin pairwise accuracy and temporal-subset T2V (mean and std over seeds)."""
    per_seed = [
        {
            "setting": r.setting,
            "seed": r.seed,
            "twin_acc": r.twin["twin_acc"],
            "twin_acc_temporal": r.twin["twin_acc_temporal"],
            "temporal_R@1": r.temporal["R@1"],
            "temporal_R@5": r.temporal["R@5"],
            "all_R@1": r.test["t2v"]["R@1"],
        }
        for r in runs
    ]
    out = aggregate_seeds(per_seed, keys=("setting",))
    counts = {r.setting: r for r in runs}
    for row in out:
        run = counts[row["setting"]]
        row.update(
            twin_pairs=run.twin["twin_pairs"],
            twin_n=run.twin["twin_n"],
            twin_n_temporal=run.twin["twin_n_temporal"],
            temporal_n=run.temporal["n"],
        )
    return out


def history_frame(runs: Sequence[RunResult]):
    """Long table of every run's per-epoch history: setting, seed, epoch, train_loss, val R@1..."""
    import pandas as pd

    rows = [{"setting": r.setting, "seed": r.seed, **h} for r in runs for h in r.history]
    return pd.DataFrame(rows)


def paper_table(
    summary: Sequence[dict[str, Any]], paper: Sequence[dict[str, Any]], settings: Sequence[str]
):
    """One row per (setting, direction): ours (mean, std over seeds) beside the paper's numbers."""
    import pandas as pd

    metrics = ("R@1", "R@5", "R@10", "MdR", "MnR")
    theirs = {(r["setting"], r["direction"]): r for r in paper}
    rows = []
    for setting in settings:
        for r in (x for x in summary if x["setting"] == setting):
            row = {"setting": setting, "direction": r["direction"], "seeds": r["n_seeds"]}
            for m in metrics:
                row[m], row[f"{m} ±"] = r[m], r[f"{m}_std"]
            p = theirs.get((setting, r["direction"]), {})
            row.update({f"paper {m}": p.get(m, math.nan) for m in metrics})
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reading


# The paper's claims that Table 1 and Table 2 support, as (better, worse, direction, words).
CLAIMS = (
    ("seqTransf", "meanP", "t2v", "a temporal transformer beats mean pooling"),
    ("tdb", "seqTransf", "t2v", "TDB beats the plain temporal transformer"),
    ("tdb", "tdb-sub", "t2v", "difference attention beats raw subtraction"),
    ("tdb", "tdb-mlp", "t2v", "difference attention beats an MLP on the difference"),
    ("tdb", "tdb-all", "t2v", "pooling frame tokens only beats pooling all tokens"),
    ("tdb+tab-base", "tdb", "v2t", "basic alignment (TAB) improves V2T"),
    ("tdb+tab-tdb", "tdb", "t2v", "TDB+TAB-TDB is the best T2V"),
    ("tdb+tab-tdb", "tdb", "v2t", "TDB+TAB-TDB beats TDB on V2T"),
)


def compare(
    summary: Sequence[dict[str, Any]], a: str, b: str, direction: str, metric: str = "R@1"
) -> dict[str, Any] | None:
    """``a`` minus ``b`` on ``metric`` with a rough 2-standard-error verdict.

    The standard error of the difference of two seed means is ``sqrt(sa^2/na + sb^2/nb)``; the
    verdict is ``"holds"`` if the difference exceeds twice that, ``"reversed"`` if it is below
    minus twice that, else ``"within noise"``; with a single seed on either side there is no
    error estimate and a nonzero difference is ``"one seed, no error bar"``. With 3 seeds this is
    a rough screen, not a test. None when either setting has no row.
    """
    rows = {(r["setting"], r["direction"]): r for r in summary}
    ra, rb = rows.get((a, direction)), rows.get((b, direction))
    if ra is None or rb is None:
        return None
    diff = ra[metric] - rb[metric]
    se = math.sqrt(
        ra[f"{metric}_std"] ** 2 / ra["n_seeds"] + rb[f"{metric}_std"] ** 2 / rb["n_seeds"]
    )
    verdict = "holds" if diff > 2 * se else "reversed" if diff < -2 * se else "within noise"
    if min(ra["n_seeds"], rb["n_seeds"]) < 2 and diff != 0:
        verdict = "one seed, no error bar"
    return {"diff": diff, "se": se, "verdict": verdict}


def claims_table(summary: Sequence[dict[str, Any]], paper: Sequence[dict[str, Any]]) -> list[dict]:
    """Each paper claim: the paper's R@1 difference, ours (mean over seeds), our verdict."""
    paper_r1 = {(r["setting"], r["direction"]): r["R@1"] for r in paper}
    out = []
    for better, worse, direction, words in CLAIMS:
        ours = compare(summary, better, worse, direction)
        if ours is None:
            continue
        p = paper_r1.get((better, direction), math.nan) - paper_r1.get((worse, direction), math.nan)
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse} ({direction.upper()} R@1)",
                "paper diff": p,
                "ours diff": ours["diff"],
                "ours 2*SE": 2 * ours["se"],
                "verdict": ours["verdict"],
            }
        )
    return out


def best_setting(
    summary: Sequence[dict[str, Any]], prefix: str, direction: str = "t2v"
) -> str | None:
    """The setting starting with ``prefix`` with the highest mean R@1 in ``direction``."""
    cands = [r for r in summary if r["setting"].startswith(prefix) and r["direction"] == direction]
    if not cands:
        return None
    return max(cands, key=lambda r: (r["R@1"], r["setting"]))["setting"]


def reading(
    summary: Sequence[dict[str, Any]],
    twins: Sequence[dict[str, Any]],
    claims: Sequence[dict[str, Any]],
    paper: Sequence[dict[str, Any]],
) -> str:
    """A plain reading of the results, every number computed from the tables."""
    parts = []
    held = [c for c in claims if c["verdict"] == "holds"]
    parts.append(
        f"{len(held)} of {len(claims)} of the paper's Table 1 comparisons hold here by more than "
        f"2 standard errors over seeds ({'; '.join(c['comparison'] for c in held) or 'none'})."
    )
    others = [c for c in claims if c["verdict"] != "holds"]
    if others:
        parts.append(
            "Not reproduced: "
            + "; ".join(
                f"{c['comparison']}: {c['verdict']} ({c['ours diff']:+.1f})" for c in others
            )
            + "."
        )
    tw = {r["setting"]: r for r in twins}
    if "meanP" in tw:
        m = tw["meanP"]
        parts.append(
            f"Reversed twins: meanP scores a caption's own video above its reversed twin in "
            f"{m['twin_acc_temporal']:.1f}% of temporal captions (50% = blind to order)."
        )
    order_aware = [s for s in tw if s != "meanP" and not s.startswith("tab-")]
    if order_aware:
        best = max(order_aware, key=lambda s: tw[s]["twin_acc_temporal"])
        worst = min(order_aware, key=lambda s: tw[s]["twin_acc_temporal"])
        parts.append(
            f"Order-aware heads reach {tw[worst]['twin_acc_temporal']:.1f}% ({worst}) to "
            f"{tw[best]['twin_acc_temporal']:.1f}% ({best}) on the same captions"
        )
        if "meanP" in tw:
            key = "twin_acc_temporal"
            clear = [
                s for s in order_aware
                if (tw[s][key] - tw["meanP"][key])
                > 2 * tw[s][f"{key}_std"] / math.sqrt(max(tw[s]["n_seeds"], 1))
                and tw[s]["n_seeds"] > 1
            ]  # fmt: skip
            parts[-1] += (
                f"; {len(clear)} of {len(order_aware)} beat meanP by more than 2 standard errors"
                f" ({', '.join(clear) or 'none'})."
            )
        else:
            parts[-1] += "."
    paper_best = {
        prefix: max(
            (r for r in paper if r["setting"].startswith(prefix) and r["direction"] == "t2v"),
            key=lambda r: r["R@1"],
            default={"setting": None},
        )["setting"]
        for prefix in ("tab-k", "tab-w")
    }
    for prefix, what in (("tab-k", "K"), ("tab-w", "w")):
        ours = best_setting(summary, prefix)
        if ours:
            sweep = [
                r for r in summary if r["setting"].startswith(prefix) and r["direction"] == "t2v"
            ]
            spread = max(r["R@1"] for r in sweep) - min(r["R@1"] for r in sweep)
            noise = max(r["R@1_std"] for r in sweep)
            parts.append(
                f"Best {what} by T2V R@1: ours {ours.removeprefix(prefix)}, the paper's "
                f"{(paper_best[prefix] or '?').removeprefix(prefix)} (our means span "
                f"{spread:.1f} points across {what}; largest seed std {noise:.1f})."
            )
    return " ".join(parts)


def twin_caption_similarity(split: SplitData) -> dict[str, float]:
    """How far apart the (frozen) text embeddings of a twin pair's temporal captions are.

    Why: in cached mode the text side is the frozen expert, which never saw a motion word. A video
    head can only separate a video from its reversed twin if the query embeddings of opposite
    captions differ. For each temporal caption of a twinned video this returns the mean cosine to
    its nearest temporal caption of the *twin* (``to_twin``) and of *its own video* (``to_own``):
    ``to_twin >= to_own`` means the text side cannot tell the pair apart, whatever the video head.
    """
    text = torch.nn.functional.normalize(
        torch.as_tensor(split.pairs.text, dtype=torch.float32), dim=-1
    )
    c2v = split.caption_to_video
    temporal = np.array(["temporal" in t for t in split.tags])
    to_twin, to_own = [], []
    for v in np.flatnonzero(split.twin_of >= 0):
        own = np.flatnonzero((c2v == v) & temporal)
        twin = np.flatnonzero((c2v == split.twin_of[v]) & temporal)
        if len(own) < 2 or len(twin) == 0:
            continue
        sim_own = text[own] @ text[own].T  # (n, n)
        sim_own.fill_diagonal_(-2.0)
        to_own.append(sim_own.max(dim=1).values.mean().item())
        to_twin.append((text[own] @ text[twin].T).max(dim=1).values.mean().item())
    if not to_twin:
        return {"to_twin": float("nan"), "to_own": float("nan"), "videos": 0}
    return {
        "to_twin": float(np.mean(to_twin)),
        "to_own": float(np.mean(to_own)),
        "videos": len(to_twin),
    }
