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
  same configuration as ``tdb+tab-base`` and are trained once (``run_key``);
- the study's own rows: ``<head>:order-blind`` (the head's order-blind control: same parts,
  frames in a canonical content order, ``vrlib.models.order_blind``), ``<head>:frozen-text``
  (the head with the frozen text side) and ``<head>:twin-batches`` (a video and its reversed
  twin packed in one batch; ``:no-twin-batches`` when the study's default packs them).

Every setting is trained with several seeds (model init and batch order); rows report the mean
over seeds and, beside each metric, ``<metric>_std`` (sample standard deviation, ddof=1; 0 for
a single seed). Twin accuracy and temporal-caption R@1 carry 95% bootstrap intervals over twin
pairs and captions, and every claim is decided by a paired bootstrap over the same units
(``toolkit.paired_claims_table``), so the answer does not rest on a handful of seeds.

The question the reading answers: do order-aware heads rank a caption's own video above its
reversed twin more often than their order-blind controls? ``study_claims`` separates "training
a projection helps" (control vs meanP) from "order helps" (head vs its control); the probes of
``temporal.probes`` say where the order signal is lost, if it is.

What differs from the paper, and why (also in the notebook):

- cached mode freezes the image encoder; the caption side learns (``text_side``: an adapter
  over cached word tokens, or the last blocks of the text tower), so every head, meanP
  included, trains a text projection, as the paper's end-to-end fine-tuning does on both sides.
  With ``text_side: {name: frozen}`` meanP trains nothing that changes a ranking.
- with ``train.mode: end_to_end`` (a GPU and real data, see ``msrvtt-9k.yaml``) the encoder is
  fine-tuned with the head, as in the paper; frames are then decoded once per split and kept
  in memory as uint8 pixels (``temporal.runs.decode_split``).

The study's code is in six modules read in this order: ``temporal.settings`` (one row and the
head it builds), this one (what is asked: parameters, the settings they list, the shapes of a
split and of a run, the claims), ``temporal.runs`` (features or pixels
of each split, then training and evaluating every setting with every seed), ``temporal.twins``
(the reversed-twin analysis and its intervals), ``temporal.probes`` (where the order signal is
lost) and ``temporal.reading`` (the words). What every study shares (rows, seeds, paper tables,
claims, bootstrap, reading words) is ``vrlib.studies.toolkit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from vrlib.studies import register_study
from vrlib.studies.common import (
    EXPERT,
    DataParams,
    EncoderParams,
    SamplingParams,
    Strict,
    check_expert,
    check_splits,
    check_temperature,
    train_over_defaults,
)
from vrlib.studies.temporal.settings import Setting, build_head, text_side_options
from vrlib.studies.toolkit import against_step0
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
ORDER_BLIND_MODELS = ("meanP",)  # heads that ignore frame order by construction (no control)
# Suffixes of the extra rows' names: order-blind control, frozen-text ablation, twin batches.
CONTROL, FROZEN_TEXT = ":order-blind", ":frozen-text"
TWIN_BATCHES, NO_TWIN_BATCHES = ":twin-batches", ":no-twin-batches"

# Defaults chosen for the embedded default world on 2 CPU cores (see parameters/.../default.yaml).
DEFAULT_TRAIN = TrainConfig(
    epochs=3,
    batch_size=128,
    lr=1e-3,
    warmup=0.1,
    temperature=0.07,  # replaced by the study's ``temperature`` (never read from here)
    learn_temperature=True,
    sampling="all_captions",
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
    study does not use (runs are short and kept in memory). ``temperature``: the softmax
    temperature training starts from, ``"expert"`` (the default: the encoder's own scale, as
    the released code starts from its backbone's) or a number (``common.start_temperature``);
    ``train.learn_temperature`` says whether it then learns.
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
    # The caption side that trains with every head: {name: frozen|adapter|last_blocks, options}.
    text_side: dict[str, Any] = Field(default_factory=lambda: {"name": "adapter"})
    # Order-aware heads that get an order-blind control (None: every one in ``models``).
    controls: list[str] | None = None
    # Heads also trained with the frozen text side (the ablation of the learning text side).
    frozen_text_models: list[str] = Field(default_factory=lambda: ["meanP", "seqTransf", "tdb"])
    # Heads also trained with ``train.twin_batches`` flipped (its effect).
    twin_batch_models: list[str] = Field(default_factory=lambda: ["seqTransf", "tdb"])
    n_boot: int = Field(1000, ge=100)  # bootstrap resamples of every confidence interval
    temperature: float | Literal["expert"] = EXPERT
    train: TrainConfig = DEFAULT_TRAIN
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    cache_dir: str | None = None

    @field_validator("train", mode="before")
    @classmethod
    def _train_over_defaults(cls, v: Any) -> Any:
        """A partial ``train:`` section overrides the study's defaults, not the engine's."""
        return train_over_defaults(
            v,
            DEFAULT_TRAIN,
            {
                "seed": "set seeds: [...] instead",
                "checkpoint_dir": "runs stay in memory",
                "temperature": "set temperature: at the top level ('expert' or a number)",
            },
        )

    @field_validator("text_side")
    @classmethod
    def _known_text_side(cls, v: dict[str, Any]) -> dict[str, Any]:
        from vrlib.models import TEXT_SIDES, build_text_side

        name = v.get("name")
        if name not in TEXT_SIDES.names():
            raise ValueError(f"text_side.name={name!r}; valid: {TEXT_SIDES.names()}")
        if name != "last_blocks":  # last_blocks copies the encoder's blocks: checked at build
            build_text_side(name, None, 64, **text_side_options(v))
        return v

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

        check_splits(self.data, self.split_keys())
        check_expert(self.data, self.encoder)
        check_temperature(self.temperature)
        names = [
            *self.models, self.sweep_model, *self.model_config_overrides, *(self.controls or []),
            *self.frozen_text_models, *self.twin_batch_models,
        ]  # fmt: skip
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

    def split_keys(self) -> dict[str, str]:
        """``{parameter key: split}`` of the three splits the study reads."""
        return {
            "train_split": self.train_split,
            "val_split": self.val_split,
            "test_split": self.test_split,
        }

    def control_models(self) -> list[str]:
        """Heads that get an order-blind control: ``controls``, or every order-aware model."""
        if self.controls is not None:
            return [m for m in self.controls if m not in ORDER_BLIND_MODELS]
        return [m for m in self.models if m not in ORDER_BLIND_MODELS]

    def settings(self) -> list[Setting]:
        """Table 1 (one per model), the order-blind controls (``<model>:order-blind``), the
        frozen-text ablation (``<model>:frozen-text``), the twin-batch flip
        (``<model>:twin-batches`` or ``:no-twin-batches``), then Table 2 (``tab-k{K}``, ``tab-w{w}``).
        """

        def cfg(m: str) -> dict[str, Any]:
            return dict(self.model_config_overrides.get(m, {}))

        out = [Setting(m, m, cfg(m)) for m in self.models]
        out += [Setting(m + CONTROL, m, cfg(m), control=True) for m in self.control_models()]
        if self.text_side["name"] != "frozen":
            out += [Setting(m + FROZEN_TEXT, m, cfg(m), text="frozen") for m in self.frozen_text_models]  # fmt: skip
        flip = not self.train.twin_batches
        suffix = TWIN_BATCHES if flip else NO_TWIN_BATCHES
        out += [
            Setting(m + suffix, m, cfg(m), train={"twin_batches": flip}) for m in self.twin_batch_models
        ]  # fmt: skip
        base = cfg(self.sweep_model)
        out += [
            Setting(f"tab-k{k}", self.sweep_model, {**base, "centers": k}) for k in self.centers
        ]
        out += [Setting(f"tab-w{w:g}", self.sweep_model, {**base, "w": w}) for w in self.weights]
        return out

    def seeds_for(self, setting: Setting) -> list[int]:
        """Training seeds of ``setting``: ``sweep_seeds`` for Table 2 settings, else ``seeds``."""
        if setting.name.startswith("tab-") and self.sweep_seeds is not None:
            return list(self.sweep_seeds)
        return list(self.seeds)


# ----------------------------------------------------------------------------- data and runs


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


@dataclass
class RunResult:
    """One (setting, seed): its per-epoch history and its test evaluation.

    ``test`` is ``vrlib.metrics.evaluate``'s result on the test split with the weights of the
    best validation epoch (``train.select_metric``); ``twin`` and ``temporal`` come from
    ``twin_pairwise_accuracy`` and ``subset_t2v`` on the same similarity matrix. The per-query
    arrays are what the bootstrap intervals resample: ``t2v_ranks`` (C,), ``v2t_ranks`` (V,)
    and ``twin_score`` (C,), 1 / 0.5 / 0 when a caption's own video scores above / ties /
    below its reversed twin, nan for captions of videos without a twin; ``reversal_score``
    (C,), the same against the caption's own video with its frame features reversed (the twin
    instrument of ``vrlib.models.reversal``: exactly 1/2 for every order-blind head). ``train_twin`` is the
    twin analysis on the training split (can the head fit twins at all?) and ``text_state``
    the trained text side, for the probes of ``temporal.probes``.
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
    t2v_ranks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v2t_ranks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    twin_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reversal_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_twin: dict[str, float] = field(default_factory=dict)  # twin_summary on the train split
    text_state: dict[str, Any] | None = None  # the trained text side's weights (cached mode)
    card: Any = None  # its result card (vrlib.evaluation.study_cards), for the leaderboard


# ----------------------------------------------------------------------------- claims


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


def study_claims(params: TemporalParams) -> list[tuple[str, str, str, str]]:
    """The study's own comparisons, as ``(better, worse, key, words)`` (keys of ``claim_units``).

    They separate what the paper's Table 1 mixes: "training a projection helps" (an order-blind
    control vs meanP, both with the same text side) from "order helps" (a head vs its own
    order-blind control, on the reversal instrument and on temporal-caption R@1); then the text side (a
    head vs its frozen-text ablation) and twin batches (a head vs the same with the flag flipped).
    """
    out = []
    for m in params.control_models():
        c = m + CONTROL
        out += [
            (m, c, "reversal", f"order helps {m} tell a video from itself played backwards"),
            (m, c, "temporal", f"order helps {m} on temporal captions (R@1)"),
            (c, "meanP", "t2v", f"training {m}'s parts, order-blind, beats meanP (T2V R@1)"),
        ]
    if params.text_side["name"] != "frozen":
        for m in params.frozen_text_models:
            out += [
                (m, m + FROZEN_TEXT, "t2v", f"the learning text side helps {m} (T2V R@1)"),
                (m, m + FROZEN_TEXT, "reversal", f"the learning text side helps {m} on order"),
            ]
    flip = not params.train.twin_batches
    for m in params.twin_batch_models:
        on, off = (m + TWIN_BATCHES, m) if flip else (m, m + NO_TWIN_BATCHES)
        out.append((on, off, "reversal", f"twin batches help {m} on order"))
    zero = step0_setting(params)
    if zero is not None:
        out += against_step0(params.models, zero)
    return out


def step0_setting(params: TemporalParams) -> str | None:
    """The setting that *is* the zero-shot expert (step 0): meanP has no weights, so meanP with
    the frozen text side trains nothing. None when the study runs no such setting."""
    if params.text_side["name"] == "frozen":
        return "meanP" if "meanP" in params.models else None
    return "meanP" + FROZEN_TEXT if "meanP" in params.frozen_text_models else None
