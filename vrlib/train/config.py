"""What a training run is told: its configuration and its learning-rate schedule.

``TrainConfig`` (validated, unknown keys rejected by name), the metrics a run may select its best
epoch by (``METRIC_KEYS``, ``SELECT_METRICS``) and the schedule ``lr_factor``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METRIC_KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR")


SELECT_METRICS = tuple(f"{d}_{k}" for d in ("t2v", "v2t") for k in METRIC_KEYS) + ("rsum",)


def reject_unknown_keys(model: type[BaseModel], data: Any) -> Any:
    """``data`` as given, or ValueError naming every key ``model`` does not have and the valid
    ones (a ``mode="before"`` validator of the run configs: a typo fails by name, not as
    pydantic's generic "extra inputs" message)."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(model.model_fields))
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} of {model.__name__}; "
                f"valid keys: {sorted(model.model_fields)}"
            )
    return data


class TrainConfig(BaseModel):
    """Everything ``fit`` needs, validated; unknown keys are rejected by name.

    Defaults follow CLIP4Clip (lr 1e-4 for the head, 1e-3 of it for CLIP, weight decay 0.2,
    warm-up 10 %, clip 1.0) except the temperature, which starts at CLIP's 0.07 because a
    cached-feature head has no pretrained logit scale to inherit. The papers' setting is
    ``temperature=0.01`` (logit scale 100, the clamp) with ``learn_temperature=False``, or in
    end_to_end mode ``temperature=None`` (the encoder's own scale, clamped at 100 every step).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2, description="global batch (all ranks together)")
    lr: float = Field(1e-4, gt=0, description="head (and temperature) learning rate")
    encoder_lr: float | None = Field(None, gt=0, description="end_to_end: CLIP lr; None = lr*1e-3")
    weight_decay: float = Field(0.2, ge=0)
    warmup: int | float = Field(0.1, description="int = steps; float in [0, 1) = fraction")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float | None = Field(1.0, gt=0, description="max global grad norm; None = off")
    seed: int = 0
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    device: str = "auto"
    num_workers: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1, description="steps between step-log entries")
    eval_every_epochs: int = Field(1, ge=0, description="0 = evaluate after the last epoch only")
    eval_chunk_size: int = Field(256, ge=1)
    checkpoint_dir: Path | None = None
    resume: bool = True
    mode: Literal["cached", "end_to_end"] = "cached"
    sampling: Literal["all_captions", "one_caption_per_video"] = "all_captions"
    temperature: float | None = Field(
        0.07,
        ge=0.01,
        description="initial softmax temperature (0.01 = CLIP4Clip's logit scale 100); "
        "None = end_to_end: start from the encoder's own logit scale",
    )
    learn_temperature: bool = True
    text_lr: float | None = Field(None, gt=0, description="trained text side's lr; None = lr")
    twin_batches: bool = Field(
        False, description="pack each video with its reversed twin (hard negatives); needs twin_of"
    )
    select_metric: str = "t2v_R@1"
    ddp_find_unused_parameters: bool = False
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _name_unknown_keys(cls, data: Any) -> Any:
        return reject_unknown_keys(cls, data)

    @model_validator(mode="after")
    def _check_temperature(self) -> TrainConfig:
        if self.temperature is None and self.mode != "end_to_end":
            raise ValueError(
                "temperature=None starts from the encoder's logit scale, which only "
                "mode='end_to_end' has; give a number (0.07 CLIP's init, 0.01 CLIP4Clip's)"
            )
        return self

    @field_validator("warmup")
    @classmethod
    def _check_warmup(cls, v: int | float) -> int | float:
        if isinstance(v, float) and not 0.0 <= v < 1.0:
            raise ValueError(f"warmup={v}: a float is a fraction in [0, 1); give steps as an int")
        if v < 0:
            raise ValueError(f"warmup={v} must be >= 0")
        return v

    @field_validator("select_metric")
    @classmethod
    def _check_select(cls, v: str) -> str:
        if v not in SELECT_METRICS:
            raise ValueError(f"select_metric={v!r} is not one of {list(SELECT_METRICS)}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v != "auto":
            torch.device(v)  # raises on a malformed name
        return v

    def warmup_steps(self, total_steps: int) -> int:
        """Warm-up length in optimiser steps for a run of ``total_steps``."""
        if isinstance(self.warmup, float):
            return int(self.warmup * total_steps)
        return self.warmup


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based): linear warm-up, cosine.

    open_clip's schedule: ``(step + 1) / warmup`` during warm-up (so step 0 already moves), then
    ``min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * e / E))`` over the remaining ``E`` steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
