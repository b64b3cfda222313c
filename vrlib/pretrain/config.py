"""What an expert is trained with: the recipes per model and world preset, and the settings a
checkpoint records (compared on resume and by ``ensure_expert``).

Why apart from the loop: the studies, the index and the command line read the recipes without
the training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODEL_NAME = "vrlib-tiny"
VIT_MODEL_NAME = "vrlib-tiny-vit32"

# Per model and world preset, the expert's training settings (the command line and
# ensure_expert). The smoke world (~300 images) only needs a model that runs; the default world
# (~6000 images) gets the best recipe found for about 5 minutes on 2 CPU cores.
#
# vrlib-tiny (open_clip ModifiedResNet, layers [1,1,1,1], width 16, 64 px; text 3 x 128): a
# convolutional image tower learns these renders far faster than a small ViT. CPU sweep (val
# R@1 t2i/i2t, default world, seed 0, 2 quiet threads unless noted): 25 epochs at batch 128 and
# lr 3e-3 reached 64.9/68.2, 81%/86% of the ideal model's 79.8/79.2 (``held_out_ceiling``), in
# 244 s; lr 2e-3 gave 60.5/65.0 (64.2/66.5 on 1 thread: the thread count changes the float sums);
# at 10 epochs batch 128 > 256 > 64, lr 1e-3 ~ 2e-3 >> 5e-3 (batch 256), width 32 no better at
# twice the cost, minimal-pair hard negatives (0.5) no better. It also encodes ~2.4x faster.
#
# vrlib-tiny-vit32 (ViT, 3 blocks, width 128, patch 8, 32 px: 16 patches + CLS = 17 tokens a
# frame): study 04 inflates a ViT image tower into its space-time model, so it keeps this expert.
# Why 32 px: an 8-frame clip is 129 tokens instead of 513, so a space-time training step costs
# about half as much on CPU and study 04 can train long enough to beat its untrained model
# clearly (issue 19). The 64 px ViT it replaces (65 tokens a frame; a sweep of 44 recipes on one
# GPU found R@1 growing with epochs, lr 1e-3 best) reached val R@1 t2i/i2t 25.6/24.8 in 547 s with
# 20 epochs at batch 256; at 32 px the same recipe with a 2 px shift (4 px is an eighth of the
# frame here) reaches 31.1/31.0 in 262 s (default world, seed 0, 2 CPU cores). Its text side
# then read a caption's direction at 78.0% (the frozen direction probe; 97.9% for vrlib-tiny):
# a 3-block ViT does not learn direction from the stills of motion in 20 epochs, and a text
# tower trained only against it learns no more (hard negatives 0.5: 78.9%). So the default
# recipe starts the text side from vrlib-tiny's expert of the same world and keeps it locked
# (``text_from``; LiT's locked tower, here the text one), with hard negatives 0.5: the image
# tower learns into a text space that already reads direction. Measured (default world, seed 0,
# 2 CPU cores): val R@1 t2i/i2t 41.1/42.8 in 162 s (a locked tower has no backward pass), the
# probe 97.9%; study 04 at seed 0-2, 192 steps: frames-1 9.7, frames-8 11.6 T2V R@1, against
# 10.2 and 9.4 from the expert that trains its own text side.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    MODEL_NAME: {
        "smoke": {"epochs": 4, "batch_size": 64, "warmup_steps": 4},
        # every mechanism planted (its stills include those of motion, each with its reversed
        # twin): half of each batch is hard negatives, so a still of motion meets its twin and
        # the text must tell "grows" from "shrinks". Measured (World v4, 25 epochs, 560 s): the
        # frozen direction probe 97.9% pairwise (82.6% with random batches and no twins, World
        # v3), held-out R@1 t2i/i2t 57.5/57.0 (57.2/56.5 before)
        "default": {
            "epochs": 25,
            "batch_size": 128,
            "lr": 3e-3,
            "warmup_steps": None,
            "hard_negatives": 0.5,
        },
    },
    VIT_MODEL_NAME: {
        "smoke": {
            "epochs": 4,
            "batch_size": 64,
            "warmup_steps": 4,
            "shift": 2,
            "text_from": MODEL_NAME,
        },
        "default": {
            "epochs": 20,
            "batch_size": 256,
            "warmup_steps": None,
            "shift": 2,
            "hard_negatives": 0.5,
            "text_from": MODEL_NAME,
        },
    },
}


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that changes the trained weights (saved in the checkpoint and compared on resume)."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int | None = None  # None: 10% of all steps, at most 100
    seed: int = 0
    shift: int = 4  # random-shift augmentation, pixels at model resolution; 0 disables it
    model_name: str = MODEL_NAME
    hard_negatives: float = 0.0  # share of each batch filled with minimal-pair partners
    # shapes or colours no training image shows (``images.kept_images``): an expert that never
    # saw them
    without_words: tuple[str, ...] = ()
    # the model whose expert (same world, seed and ``without_words``) gives this one its text
    # tower, locked while the image tower trains; "" trains both towers from scratch
    text_from: str = ""

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.hard_negatives < 1.0:
            raise ValueError(f"hard_negatives must be in [0, 1), got {self.hard_negatives}")
        if list(self.without_words) != sorted(set(self.without_words)):
            raise ValueError(
                f"without_words must be sorted and distinct, got {list(self.without_words)}"
            )
        if self.text_from == self.model_name:
            raise ValueError(f"text_from must name another model than {self.model_name!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.shift < 0:
            raise ValueError(
                f"lr must be > 0, weight_decay and shift >= 0; got lr={self.lr}, weight_decay={self.weight_decay}, shift={self.shift}"
            )


def config_record(cfg: PretrainConfig) -> dict[str, Any]:
    """The settings a checkpoint records and is compared on: ``without_words`` (as a list) and
    ``text_from`` only when set, so the experts trained before those settings existed stay valid."""
    record = asdict(cfg)
    words, text_from = record.pop("without_words"), record.pop("text_from")
    return (
        record
        | ({"without_words": list(words)} if words else {})
        | ({"text_from": text_from} if text_from else {})
    )
