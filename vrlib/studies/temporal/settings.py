"""Study 02's settings: what one row of its tables is, and the temporal head it builds.

Why apart from ``temporal.study``: the parameters (``TemporalParams``) list and check settings,
and the runs, twins and probes build their heads; a setting needs neither, so it sits below them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import torch


def text_side_options(text_side: dict[str, Any]) -> dict[str, Any]:
    """The options of a ``text_side`` parameter (every key but ``name``)."""
    return {k: v for k, v in text_side.items() if k != "name"}


@dataclass(frozen=True)
class Setting:
    """One row of a table: its name, the head it builds and how it is trained.

    Attributes:
        control: train and evaluate the head's order-blind control (``vrlib.models.order_blind``).
        text: the text side's name when it differs from the study's (``"frozen"``), else None.
        train: ``TrainConfig`` keys that differ from the study's ``train`` (e.g. twin batches).
    """

    name: str
    model: str
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    control: bool = False
    text: str | None = None
    train: dict[str, Any] = field(default_factory=dict, hash=False)

    def run_key(self) -> str:
        """Identity of what is trained: settings with the same head and config share runs.

        Keys equal to the head's defaults are dropped, so ``tab-k5`` (centers=5) is the same run
        as ``tdb+tab-base``.
        """
        defaults = _head_defaults(self.model)
        cfg = {k: v for k, v in self.config.items() if defaults.get(k, object()) != v}
        how = {"control": self.control, "text": self.text, "train": self.train}
        return f"{self.model}|{json.dumps(cfg, sort_keys=True)}|{json.dumps(how, sort_keys=True)}"


@functools.cache
def _head_defaults(model: str) -> dict[str, Any]:
    """The config a head is built with when given no keys (dim/num_frames excluded)."""
    import dataclasses

    head = build_head(Setting(model, model), dim=64, num_frames=2)
    cfg = dataclasses.asdict(head.config)
    return {k: v for k, v in cfg.items() if k not in ("dim", "num_frames", "heads")}


def build_head(setting: Setting, dim: int, num_frames: int, seed: int | None = None):
    """The head of ``setting`` for features of size ``dim`` (init drawn from ``seed`` if given).

    A control is the same head, with the same init, wrapped by ``vrlib.models.order_blind``.
    """
    from vrlib.models import build_model, order_blind

    if seed is not None:
        torch.manual_seed(seed)
    head = build_model(setting.model, dim=dim, num_frames=num_frames, **setting.config)
    return order_blind(head) if setting.control else head
