"""Study 04's parameters (``parameters/curriculum/*.yaml``), checked before a notebook starts.

Why apart from :mod:`vrlib.studies.curriculum.runs` (which re-exports them): the checks of a space-time
run (a ViT encoder to inflate, a known space-time config, stages no longer than the decoded
pool, the images joint runs read) are a page of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vrlib.studies import register_study
from vrlib.studies.common import DataParams, EncoderParams, Strict
from vrlib.train.schedule import Stage


def _stages(*frames_steps: tuple[int, int]) -> list[Stage]:
    return [Stage(frames=f, steps=s) for f, s in frames_steps]


class TrainParams(Strict):
    """The ``CurriculumConfig`` fields every run shares (schedule, data and seed are per run)."""

    video_batch: int = Field(8, ge=2)
    image_batch: int = Field(16, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)  # None: no clipping
    temperature: float = Field(0.05, gt=0)
    # the order-free-captions control: 0.5 plays half the training clips backwards under their
    # own caption, so its words of order and direction no longer tell which way a clip plays
    backwards_share: float = Field(0.0, ge=0, le=1)
    views: int = Field(8, ge=1)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str = "auto"

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        from vrlib.encoders.names import check_device

        return check_device(device, allow_auto=True)


@register_study(
    "curriculum",
    "04_curriculum.ipynb",
    "04 — Frame curriculum, joint image+video training (Bain 2021, Frozen in Time)",
)
class CurriculumParams(Strict):
    """Parameters of study 04 (``parameters/curriculum/*.yaml``)."""

    seed: int = 0  # data subsets and the bootstrap
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    ablation_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    data: DataParams = DataParams()
    image_root: str | None = None  # a folder with annotations/images.jsonl; None = the world's
    # a ViT: its blocks are inflated
    encoder: EncoderParams = EncoderParams(model="vrlib-tiny-vit32")
    model: str = "frozen-tiny"
    pool_frames: int = Field(16, ge=1)
    test_captions_per_video: int | None = Field(3, ge=1)
    train: TrainParams = TrainParams()
    schedules: dict[str, list[Stage]] = Field(default_factory=lambda: {
        "1": _stages((1, 12)), "4": _stages((4, 12)), "1=>4": _stages((1, 6), (4, 6)),
        "8": _stages((8, 12)), "1=>4=>8": _stages((1, 4), (4, 4), (8, 4)),
    })  # fmt: skip
    expansion: Literal["zeros", "nearest", "bilinear"] = "zeros"
    expansions: list[Literal["zeros", "nearest", "bilinear"]] = ["zeros", "nearest", "bilinear"]
    expansion_schedule: str = "1=>4=>8"
    table4_data: Literal["joint", "images", "videos"] = "videos"
    expansion_data: Literal["joint", "images", "videos"] = "joint"
    sources: list[Literal["images", "videos", "joint"]] = ["images", "videos", "joint"]
    sources_schedule: str = "4"
    blocks: list[Literal["frozen", "timesformer"]] = ["frozen"]
    # two entries add the CLS ablation (one CLS for the clip, the paper's, vs one per frame)
    cls_modes: list[Literal["video", "frame"]] = ["video"]
    curve_schedules: list[str] = ["8", "1=>4=>8"]
    curve_every: int = Field(4, ge=1)
    # Declared margins, in T2V R@1 points: "reaches X" holds only if the lower bound of the
    # difference is above -noninferiority_margin; "within noise" (expansions) is two one-sided
    # tests inside +-equivalence_margin.
    noninferiority_margin: float = Field(1.0, gt=0)
    equivalence_margin: float = Field(1.0, gt=0)
    # the expansion comparison is uninformative when the learned temporal rows it expands are
    # this small next to the spatial positions (RMS row norms): every method then writes ~zeros
    negligible_table_ratio: float = Field(0.05, ge=0)
    # Table 2's mechanism, a concept only the images carry (issue 19): training videos that show
    # one of these shapes or colours are left out (the images keep theirs). With the same words in
    # ``encoder.expert_without_words`` the model starts without them too, and joint against
    # videos-only is tested again on the test videos that show them. [] keeps every training
    # video: the negative control, where the videos teach the word as well.
    videos_without_words: list[str] = Field(default_factory=list)
    n_boot: int = Field(2000, ge=100)
    train_split: str = "train"
    test_split: str = "test"

    @field_validator("model")
    @classmethod
    def _known_space_time_model(cls, name: str) -> str:
        from vrlib.models.frozen import load_frozen_config

        try:
            load_frozen_config(name)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(str(e)) from None
        return name

    @field_validator("encoder")
    @classmethod
    def _vit_encoder(cls, enc: EncoderParams) -> EncoderParams:
        from vrlib.encoders.names import is_vit

        if not is_vit(enc.model):
            raise ValueError(
                f"model {enc.model!r} has no ViT image tower; the space-time model inflates a "
                "ViT's blocks (e.g. vrlib-tiny-vit32, ViT-B-16)"
            )
        return enc

    @field_validator("videos_without_words")
    @classmethod
    def _known_words(cls, words: list[str]) -> list[str]:
        from vrlib.pretrain import known_words

        return known_words(words)

    def held_out_words(self) -> list[str]:
        """The shapes or colours the model starts without or the training videos lack (sorted)."""
        return sorted({*self.encoder.expert_without_words, *self.videos_without_words})

    def split_keys(self) -> dict[str, str]:
        """``{parameter key: split}`` of the splits the study reads."""
        return {"train_split": self.train_split, "test_split": self.test_split}

    @model_validator(mode="after")
    def _check(self) -> CurriculumParams:
        from vrlib.models.frozen import load_frozen_config
        from vrlib.studies.common import check_expert, check_splits

        check_splits(self.data, self.split_keys())
        check_expert(self.data, self.encoder)
        if self.videos_without_words and self.data.dataset != "synthetic":
            raise ValueError(
                f"videos_without_words needs dataset: synthetic (its videos list the shapes and "
                f"colours they show), got dataset: {self.data.dataset!r}"
            )
        needed = {self.expansion_schedule, self.sources_schedule, *self.curve_schedules}
        missing = sorted(needed - set(self.schedules))
        if missing:
            raise ValueError(f"schedule(s) {missing} are not in schedules {sorted(self.schedules)}")
        totals = {name: sum(s.steps for s in st) for name, st in self.schedules.items()}
        if len(set(totals.values())) > 1:
            raise ValueError(f"every schedule must have the same total steps (paper), got {totals}")
        max_frames = load_frozen_config(self.model).max_frames
        for name, stages in self.schedules.items():
            for stage in stages:
                if stage.frames > min(self.pool_frames, max_frames):
                    raise ValueError(
                        f"schedules.{name}: a stage of {stage.frames} frames, but "
                        f"pool_frames is {self.pool_frames} (frames decoded per video) and "
                        f"{self.model} holds at most {max_frames}"
                    )
        return self

    def uses_images(self) -> bool:
        """Whether any setting trains on still images (``images`` or ``joint``)."""
        mixes = {self.table4_data, self.expansion_data, *self.sources}
        return bool(mixes & {"images", "joint"})

    def check_files(self) -> None:
        """The image set that joint and image-only runs read (called by ``check_inputs``)."""
        from vrlib.data.datasets import load_image_captions

        if not self.uses_images() or (self.image_root is None and self.data.root is None):
            return  # the embedded world's images are made with the world
        key = "image_root" if self.image_root is not None else "image_root (unset: data.root)"
        root = Path(self.image_root or self.data.root).expanduser()
        if not root.is_dir():
            raise ValueError(f"{key}: {root}: folder not found")
        try:
            pairs = load_image_captions(root, "train")
        except (OSError, ValueError) as e:
            raise ValueError(f"{key}: {e}") from None
        if not pairs:
            raise ValueError(f"{key}: {root}: no train images in annotations/images.jsonl")
