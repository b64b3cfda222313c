"""Study 03 — learning text-to-video retrieval from frame captions (Ventura et al. 2024).

Can a video retrieval model learn with no video labels? Image captioners caption M = 10 equally
spaced frames of every *training* video, CLIPScore (the expert's ``2.5 * max(cos, 0)`` between a
caption and its own frame) ranks them, a selection rule (``vrlib.captions.selection``) keeps a
candidate set per video, and contrastive training pairs each video with one caption of its set,
drawn anew every epoch. Evaluation is on the test split with its ground-truth captions.

Runs, named in metrics.json by ``setting`` = the rule's registered name, with ``captioners``
(``C``, ``B``, ``C+B``: the parameter file's labels joined by ``+``) and ``k`` beside it:

- Table 1: each captioner with ``rand_top_k`` (K = 2), against ``zero_shot`` (the expert's mean
  pooling, nothing trained: the paper's "CLIP baseline");
- Table 2: per captioner ``rand_m``, ``middle_1``, ``top_1``, ``rand_top_k`` K = 2 and 3;
- Table 3: C, B, C+B (``rand_top_k`` K = 2 over both captioners) and ``pooled_top_k`` (the top 2
  of all 20 pooled);
- upper bounds, labelled so and never counted as a captioner result: ``ground_truth_captions``
  (the same training on the dataset's own training captions, one per video per epoch) and,
  on the embedded world, ``ground_truth_describer`` (``GroundTruthDescriber`` labels of the same
  frames, ``rand_top_k`` K = 2 on its CLIPScores).

The guard: every run's training texts go through :func:`check_training_texts`, which fails unless
each text of a video is one its captioners wrote for that video (upper-bound runs excepted, by
name). Validation: the end-to-end lr is chosen on the labelled val split (hyperparameters on
val, the test split touched once), the one place outside the upper bounds where video labels
are read; the paper gives its lr instead. There is no best-epoch selection: the model of the
last epoch is tested.

Two training protocols over the same labels and guard: ``end to end`` (the paper's: both towers
fine-tuned, ``captions.end_to_end``) and ``cached`` (the labelled cheap ablation on frozen features,
``captions.runs``); a run's :class:`RunSpec` carries its protocol.

Read in this order: this module (parameters, runs, the guard), ``captions.claims``,
``captions.data`` (labels, features, candidate sets), ``captions.runs``, ``captions.end_to_end``
and ``captions.report`` (rows, figures, the per-query bootstrap and the reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vrlib.studies import register_study
from vrlib.studies.captions.captioner_spec import CaptionerSpec
from vrlib.studies.common import (
    EXPERT,
    DataParams,
    EncoderParams,
    SamplingParams,
    Strict,
    check_expert,
    check_temperature,
    train_over_defaults,
)
from vrlib.studies.common import check_splits as _check_splits
from vrlib.train import TrainConfig

ZERO_SHOT = "zero_shot"
GT_CAPTIONS = "ground_truth_captions"
GT_DESCRIBER = "ground_truth_describer"
UPPER_BOUNDS = (GT_CAPTIONS, GT_DESCRIBER)
CACHED, END_TO_END = "cached", "end to end"  # a run's protocol: cheap ablation, the paper's
TABLE2_RULES = (("rand_m", 1), ("middle_1", 1), ("top_1", 1), ("rand_top_k", 2), ("rand_top_k", 3))

# The paper's setting (10 epochs, lr 1e-4, batch 16, Adam, cosine) scaled to cached features on
# 2 CPU cores: the small trainable parts take a larger lr, and a batch of 32 over ~430 videos
# gives 13 steps per epoch, ~270 in 20 epochs. The temperature starts at the expert's own (see
# ``CaptionSelectionParams.temperature``) and is learned, as CLIP4Clip starts from CLIP's scale.
# Measured on the default world (T2V R@1, 2 seeds; zero-shot 13.9): CLIP4Clip's fixed 0.01
# from this init makes the first losses ~21 and the first steps wreck the aligned space (the
# ground-truth upper bound fell to 5.0 at lr 1e-3, 5 epochs); at the expert's 0.059 the upper
# bound reaches 16.0-16.6 while 5 epochs of 6 steps barely move it (14.1).
DEFAULT_TRAIN = TrainConfig(
    epochs=20,
    batch_size=32,
    lr=1e-3,
    warmup=0.1,
    temperature=0.07,  # replaced by the study's ``temperature`` (never read from here)
    learn_temperature=True,
    sampling="one_caption_per_video",
    progress=False,
    eval_chunk_size=512,
)


class EndToEndParams(Strict):
    """The paper's protocol, both towers fine-tuned (``captions.end_to_end``).

    The runs: per captioner label in ``captioners`` each ``[rule, k]`` of ``rules``, plus
    ``upper_bounds``: by default C's Top-2 (the
    paper's method), the ``GroundTruthDescriber``'s Top-2 (exact captions of the same frames:
    what a perfect image captioner would give) and the ground-truth video captions. ``lrs``: the
    learning rates tried on the study's ``val_split`` (first seed, the first run that is not an upper bound,
    the untrained model beside them); the best trains every run; one lr is used as given (no val
    split read). Empty ``captioners`` and
    ``upper_bounds`` switch the protocol off.

    ``frames``: N = 2 segment-random training frames, not the paper's 10: the image tower runs on
    every training frame (test frames stay the study's 10). ``seeds``: the study's when None; a
    run costs ~40 s on two cores (412 steps of batch 16, ~100 ms a step however small the batch),
    so the default parameter files run 2 seeds and two lrs within the study's 12 minutes.
    """

    captioners: list[str] = Field(default_factory=lambda: ["C"])
    rules: list[tuple[str, int]] = Field(default_factory=lambda: [("rand_top_k", 2)])
    upper_bounds: list[str] = Field(default_factory=lambda: [GT_DESCRIBER, GT_CAPTIONS])
    frames: int = Field(2, ge=1)  # N segment-random training frames (the paper's 10: cost)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=2)
    lrs: list[float] = Field(default_factory=lambda: [1e-4, 3e-5], min_length=1)
    seeds: list[int] | None = None  # None: the study's seeds
    num_workers: int = Field(0, ge=0)  # DataLoader workers (decoding, when frames are not held)

    @field_validator("lrs")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not lr > 0 for lr in v):
            raise ValueError(f"lrs must be > 0, got {v}")
        return v


@register_study(
    "caption_selection",
    "03_caption_selection.ipynb",
    "03 — Learning from frame captions: CLIPScore selection (Ventura 2024)",
)
class CaptionSelectionParams(Strict):
    """Parameters of study 03 (``parameters/caption_selection/*.yaml``).

    ``train`` is the engine's ``TrainConfig`` over the study's defaults (``seed`` comes from
    ``seeds``; ``sampling`` is fixed to one caption per video per epoch). ``temperature``: the
    softmax temperature training starts from: ``"expert"`` (the default) is the encoder's own,
    ``1 / exp(logit_scale)``, clamped to [0.01, 1], so training continues the expert's contrastive
    objective instead of restarting it at another sharpness; or a number. ``frame_epochs``: how
    many epochs of segment-random training frames are extracted (each a cached feature file);
    epoch ``e`` trains on draw ``e % frame_epochs``. ``lrs``: the cached protocol's learning
    rates, tried on ``val_split`` (first seed, the first captioner's Top-K run; one lr is used as
    given); ``end_to_end.lrs`` likewise for the paper's protocol.
    """

    seed: int = 0  # frames, labels and the report; training seeds are ``seeds``
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    data: DataParams = DataParams()
    encoder: EncoderParams = EncoderParams()
    captioners: list[CaptionerSpec] = Field(
        default_factory=lambda: [
            CaptionerSpec(label="C", name="clipcap-tiny"),
            CaptionerSpec(label="B", name="blip-tiny"),
        ],
        min_length=1,
    )
    decoding: dict[str, Any] = Field(default_factory=lambda: {"method": "greedy"})
    frames_per_video: int = Field(10, ge=1)  # M, the captioned frames
    caption_size: int | None = Field(64, ge=1)  # frames decoded square at this size for captioning
    train_sampling: SamplingParams = SamplingParams(strategy="segment_random", n=10)
    test_sampling: SamplingParams = SamplingParams(strategy="uniform", n=10)
    frame_epochs: int = Field(5, ge=1)
    rules: list[tuple[str, int]] = Field(default_factory=lambda: [list(r) for r in TABLE2_RULES])
    combine_k: int = Field(2, ge=1)  # K of Table 1 and 3 (C, B, C+B and pooled top K)
    text_side: dict[str, Any] = Field(default_factory=lambda: {"name": "adapter", "layers": 1})
    upper_bounds: list[str] = Field(default_factory=lambda: list(UPPER_BOUNDS))
    temperature: float | Literal["expert"] = EXPERT
    train: TrainConfig = DEFAULT_TRAIN
    lrs: list[float] = Field(default_factory=lambda: [3e-3, 1e-3, 3e-4], min_length=1)
    train_split: str = "train"
    val_split: str = "val"  # chooses each protocol's lr (``lrs``, ``end_to_end.lrs``)
    test_split: str = "test"
    n_boot: int = Field(1000, ge=1)
    figure_videos: int = Field(3, ge=0)
    end_to_end: EndToEndParams = EndToEndParams()
    training_curves: bool = True  # test R@1 after each epoch of Table 1's runs (diagnostic)
    quality_images: int = Field(200, ge=0)  # held-out world images per captioner quality row
    cache_dir: str | None = None

    @field_validator("train", mode="before")
    @classmethod
    def _train_over_defaults(cls, v: Any) -> Any:
        return train_over_defaults(
            v,
            DEFAULT_TRAIN,
            {
                "seed": "set seeds: [...] instead",
                "checkpoint_dir": "runs stay in memory",
                "sampling": "one caption per video per epoch, as the paper",
                "temperature": "set temperature: at the top level ('expert' or a number)",
                "lr": "set lrs: [...] at the top level (chosen on val_split)",
            },
        )

    @field_validator("lrs")
    @classmethod
    def _positive_lrs(cls, v: list[float]) -> list[float]:
        return EndToEndParams._positive(v)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> CaptionSelectionParams:
        from vrlib.captions import SELECTION_RULES, Decoding
        from vrlib.models.text_side import TEXT_SIDES

        _check_splits(self.data, self.split_keys())
        check_expert(self.data, self.encoder)
        if self.data.stills_overrides():
            raise ValueError(
                f"data.world_overrides {sorted(self.data.stills_overrides())} change the stills, "
                "and study 03's world captioners are the preset's, trained on its stills: "
                "override knobs that change videos alone"
            )
        labels = [c.label for c in self.captioners]
        if len(set(labels)) != len(labels):
            raise ValueError(f"captioners: labels must be distinct, got {labels}")
        for rule, k in self.rules:
            if rule not in SELECTION_RULES.names():
                raise ValueError(
                    f"rules: unknown selection rule {rule!r}; valid: {', '.join(SELECTION_RULES.names())}"
                )
            if not 1 <= k <= self.frames_per_video:
                raise ValueError(f"rules: k={k} of {rule!r} must be in 1..{self.frames_per_video}")
        if self.combine_k > self.frames_per_video:
            raise ValueError(
                f"combine_k={self.combine_k} > frames_per_video={self.frames_per_video}"
            )
        bad = sorted(set(self.upper_bounds) - set(UPPER_BOUNDS))
        if bad:
            raise ValueError(f"upper_bounds: unknown {bad}; valid: {', '.join(UPPER_BOUNDS)}")
        if GT_DESCRIBER in self.upper_bounds and self.data.root is not None:
            raise ValueError(f"upper_bounds: {GT_DESCRIBER} reads the embedded world's record")
        side = self.text_side.get("name")
        if side not in TEXT_SIDES.names():
            raise ValueError(
                f"text_side.name: unknown {side!r}; valid: {', '.join(TEXT_SIDES.names())}"
            )
        Decoding(**self.decoding)
        check_temperature(self.temperature)
        self._check_end_to_end(labels, SELECTION_RULES.names())
        return self

    def _check_end_to_end(self, labels: list[str], rules: list[str]) -> None:
        e2e = self.end_to_end
        unknown = sorted(set(e2e.captioners) - set(labels))
        if unknown:
            raise ValueError(
                f"end_to_end.captioners: {unknown} are not labels of captioners {labels}"
            )
        for rule, k in e2e.rules:
            if rule not in rules or not 1 <= k <= self.frames_per_video:
                raise ValueError(
                    f"end_to_end.rules: [{rule!r}, {k}] needs a rule of {', '.join(rules)} and "
                    f"k in 1..{self.frames_per_video}"
                )
        bad = sorted(set(e2e.upper_bounds) - set(UPPER_BOUNDS))
        if bad:
            raise ValueError(
                f"end_to_end.upper_bounds: unknown {bad}; valid: {', '.join(UPPER_BOUNDS)}"
            )
        if GT_DESCRIBER in e2e.upper_bounds and self.data.root is not None:
            raise ValueError(
                f"end_to_end.upper_bounds: {GT_DESCRIBER} reads the embedded world's record"
            )

    def split_keys(self) -> dict[str, str]:
        """``{parameter key: split}`` of the splits the study reads (the val split only when the
        end-to-end protocol runs: it chooses that protocol's lr)."""
        keys = {"train_split": self.train_split, "test_split": self.test_split}
        if len(self.lrs) > 1 or (self.end_to_end_runs() and len(self.end_to_end.lrs) > 1):
            keys["val_split"] = self.val_split
        return keys

    def check_files(self) -> None:
        """What the captioners name on disk (called by ``check_inputs``)."""
        for i, spec in enumerate(self.captioners):
            spec.check_files(f"captioners.{i}")

    def runs(self) -> list[RunSpec]:
        """Every trained run: Table 2 per captioner, C+B and pooled top K, the upper bounds."""
        labels = [c.label for c in self.captioners]
        out = [RunSpec(rule, k, (label,)) for label in labels for rule, k in self.rules]
        out += [RunSpec("rand_top_k", self.combine_k, (label,)) for label in labels]
        if len(labels) > 1:
            out += [
                RunSpec("rand_top_k", self.combine_k, tuple(labels)),
                RunSpec("pooled_top_k", self.combine_k, tuple(labels)),
            ]
        out += [RunSpec(ub, self.combine_k, ()) for ub in self.upper_bounds]
        return list(dict.fromkeys(out))  # Table 1's runs are Table 2's rand_top_k K=2: once

    def end_to_end_seeds(self) -> list[int]:
        """The end-to-end runs' seeds (``end_to_end.seeds``, else the study's)."""
        return self.end_to_end.seeds or self.seeds

    def end_to_end_runs(self) -> list[RunSpec]:
        """The runs of the paper's protocol (``end_to_end``), both towers fine-tuned."""
        e2e = self.end_to_end
        out = [RunSpec(rule, k, (label,), END_TO_END) for label in e2e.captioners
               for rule, k in e2e.rules]  # fmt: skip
        out += [RunSpec(ub, self.combine_k, (), END_TO_END) for ub in e2e.upper_bounds]
        return list(dict.fromkeys(out))


@dataclass(frozen=True)
class RunSpec:
    """One trained configuration: a selection rule with its K over some captioners' labels.

    Upper bounds have ``captioners == ()`` and ``rule`` in ``UPPER_BOUNDS``.
    """

    rule: str
    k: int
    captioners: tuple[str, ...]
    protocol: str = CACHED  # or END_TO_END: both towers fine-tuned (the paper's)

    @property
    def label(self) -> str:
        """``C``, ``B``, ``C+B``; ``upper bound`` for the ground-truth runs, ``none`` for zero-shot."""
        if self.is_upper_bound:
            return "upper bound"
        return "+".join(self.captioners) if self.captioners else "none"

    @property
    def is_upper_bound(self) -> bool:
        return self.rule in UPPER_BOUNDS

    @property
    def key(self) -> str:
        """Unique name of the run in tables (``C/rand_top_k2``, ``C+B/pooled_top_k2``; an
        end-to-end run ends in `` e2e``: ``C/rand_top_k2 e2e``)."""
        uses_k = self.rule in ("rand_top_k", "pooled_top_k")
        tail = " e2e" if self.protocol == END_TO_END else ""
        return f"{self.label}/{self.rule}{self.k if uses_k else ''}{tail}"


def run_key(setting: str, captioners: str, k: int, protocol: str = "cached") -> str:
    """The :attr:`RunSpec.key` of a metrics row (``setting``, ``captioners``, ``k``,
    ``protocol``)."""
    names = tuple(captioners.split("+")) if captioners else ()
    return RunSpec(setting, k, names, protocol).key


# ----------------------------------------------------------------------------- the guard


class GroundTruthInTraining(AssertionError):
    """A training text that no captioner wrote for its video: ground truth may be leaking."""


def check_training_texts(
    texts: Sequence[Sequence[str]],
    produced: Sequence[Sequence[str]],
    ground_truth: Sequence[Sequence[str]],
    *,
    upper_bound: bool = False,
) -> None:
    """Fail unless every training text of each video is a caption its captioners produced.

    Why provenance and not a string blacklist: the world's image captions and video captions
    share templates, so a captioner may legitimately write a sentence that is also some video's
    ground truth. What must never happen is a text entering training that the captioners did not
    write for that video; a ground-truth caption that does is named in the error.

    Args:
        texts: per video, every text training may pair with it (its candidate set).
        produced: per video, every caption its captioners wrote (M x I).
        ground_truth: per video, its ground-truth captions (for the message).
        upper_bound: the labelled upper-bound runs, which train on ground truth by design.

    Raises:
        GroundTruthInTraining: naming the video index and the text.
    """
    if upper_bound:
        return
    if not len(texts) == len(produced) == len(ground_truth):
        raise ValueError(
            f"per-video lists differ in length: {len(texts)}, {len(produced)}, {len(ground_truth)}"
        )
    for v, (mine, made, gt) in enumerate(zip(texts, produced, ground_truth, strict=True)):
        allowed = set(made)
        for t in mine:
            if t not in allowed:
                what = "a ground-truth caption" if t in set(gt) else "a text no captioner wrote"
                raise GroundTruthInTraining(f"video {v}: training text {t!r} is {what}")
