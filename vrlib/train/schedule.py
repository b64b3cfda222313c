"""The schedule of a curriculum run: its stages (frames, steps, clips per batch) and its config.

Why apart from ``vrlib.train.curriculum``: what a run *is* (the stages, which kind of batch each
step takes, the settings that change the weights) is read by the study's parameters and tests
without the loop that carries it out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vrlib.train.config import reject_unknown_keys


class Stage(BaseModel):
    """One stage of the frame curriculum: ``steps`` optimiser steps with ``frames`` per video and
    ``clips`` videos per video batch (``None``: the run's ``video_batch``).

    Why a batch per stage: the paper matches compute across stages, so the batch in clips falls
    as the frames rise (96 clips of 1 frame, 24 of 4, 16 of 8).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    frames: int = Field(ge=1)
    steps: int = Field(ge=1)
    clips: int | None = Field(None, ge=2)


class CurriculumConfig(BaseModel):
    """Everything :func:`train_curriculum` needs; unknown keys are rejected by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Stage] = Field(min_length=1)
    expansion: Literal["zeros", "nearest", "bilinear"] = "zeros"
    data: Literal["joint", "images", "videos"] = "joint"
    video_batch: int = Field(16, ge=2)
    image_batch: int = Field(32, ge=2)
    lr: float = Field(3e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup: int = Field(0, ge=0, description="warm-up steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    temperature: float = Field(0.05, gt=0.01, description="the paper's sigma, fixed")
    backwards_share: float = Field(
        0.0, ge=0, le=1, description="share of training clips played backwards under their own "
        "caption; 0.5: a caption says nothing about the order its clip plays in"
    )  # fmt: skip
    seed: int = 0
    eval_every: int = Field(0, ge=0, description="steps between evaluations; 0 = at the end")
    views: int = Field(8, ge=1, description="frames seen per test video (stride offsets x T)")
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str = "auto"
    checkpoint_dir: Path | None = None
    checkpoint_every: int = Field(0, ge=0, description="0 = at stage ends and when stopping")

    @model_validator(mode="before")
    @classmethod
    def _name_unknown(cls, data: Any) -> Any:
        return reject_unknown_keys(cls, data)

    @model_validator(mode="after")
    def _every_stage_sees_videos(self) -> CurriculumConfig:
        """With alternating batches a stage must hold an even step, or its frames never train."""
        start = 0
        for i, stage in enumerate(self.stages):
            if self.data == "joint" and stage.steps < 2 and start % 2 == 1:
                raise ValueError(
                    f"stages[{i}] ({stage.frames} frames, 1 step at odd step {start}) would get "
                    "only an image batch with data='joint'; give it at least 2 steps"
                )
            start += stage.steps
        return self

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    @property
    def final_frames(self) -> int:
        return self.stages[-1].frames


def stage_at(stages: list[Stage], step: int) -> Stage:
    """The stage of 0-based ``step`` of the schedule (the last one beyond its end)."""
    end = 0
    for stage in stages:
        end += stage.steps
        if step < end:
            return stage
    return stages[-1]


def frames_at(stages: list[Stage], step: int) -> int:
    """Frames per video at 0-based ``step`` of the schedule (the last stage's beyond its end)."""
    return stage_at(stages, step).frames


def stage_ends(stages: list[Stage]) -> list[int]:
    """Steps after which each stage is complete (cumulative step counts)."""
    return np.cumsum([s.steps for s in stages]).tolist()


def batch_kind(cfg: CurriculumConfig, step: int) -> str:
    """``"video"`` or ``"image"``: which set step ``step`` draws its batch from."""
    if cfg.data != "joint":
        return cfg.data[:-1]
    return "video" if step % 2 == 0 else "image"
