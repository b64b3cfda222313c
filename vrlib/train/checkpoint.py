"""Checkpoints and resume: what a run saves and restores to continue exactly.

RNG states (python, numpy, torch, CUDA), CPU copies of weights, the check that a resume uses the
same settings, and the atomic writes of ``last.pt`` and ``train_log.csv``.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vrlib.io import atomic_save_torch
from vrlib.train.config import TrainConfig

# Keys that may change between a run and its resume: they do not change what is trained.
RESUME_FREE_KEYS = frozenset(
    {"resume", "num_workers", "log_every", "progress", "device", "eval_every_epochs",
     "eval_chunk_size", "checkpoint_dir"}
)  # fmt: skip


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the global RNG third-party code may use)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(state["python"])


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.model_dump(mode="json")
    # a key the checkpoint predates (text_lr, twin_batches, ...) counts as its default
    defaults = TrainConfig().model_dump(mode="json")
    saved = {**defaults, **saved}
    changed = sorted(k for k in now if k not in RESUME_FREE_KEYS and saved.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume: the checkpoint was trained with different settings ({diffs}); "
            "use another checkpoint_dir or resume=False"
        )


def _save_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """Atomic ``torch.save`` (a module-level function so tests can simulate a crash after it)."""
    atomic_save_torch(path, ckpt)


def _csv(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@dataclass
class TrainResult:
    """What ``fit`` returns. ``model`` is left at its final weights; ``best_state`` holds the best.

    Attributes:
        history: one dict per epoch: epoch, step, train_loss, grad_norm, lr, logit_scale, time_s,
            data_s and, when evaluated, val_t2v_R@1 ... val_v2t_MnR.
        steps: step-level log every ``log_every`` steps: step, epoch, loss, grad_norm, lr.
        best_epoch, best_metrics: the epoch with the best ``select_metric`` and its history row.
        best_state / final_state: CPU state dicts {"model", "loss"[, "encoder"][, "text_side"]}.
        log_path, csv_path, checkpoint_path: files written (None without ``checkpoint_dir``).
    """

    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    best_epoch: int | None
    best_metrics: dict[str, Any] | None
    best_state: dict[str, dict[str, Tensor]] | None
    final_state: dict[str, dict[str, Tensor]]
    config: dict[str, Any]
    log_path: Path | None = None
    csv_path: Path | None = None
    checkpoint_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
