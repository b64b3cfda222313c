"""Where generated data lives.

Why: the default world and the pretrained expert are made by code, are hundreds of MB, and do
not belong in git. They live under ``$VRLIB_HOME`` (default ``~/.cache/vrlib``), like torch hub's
cache, keyed by preset and seed so that different presets never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def vrlib_home() -> Path:
    """Root of generated data: ``$VRLIB_HOME`` or ``~/.cache/vrlib``."""
    return Path(os.environ.get("VRLIB_HOME", Path.home() / ".cache" / "vrlib")).expanduser()


def world_dir(preset: str = "default", seed: int = 0, overrides: dict | None = None) -> Path:
    """Folder of the embedded synthetic world for ``preset`` and ``seed``.

    ``overrides`` (``WorldConfig`` fields changed from the preset, e.g. ``{"video_shift": 0.0}``
    for a world without the image->video gap) get a folder of their own, named by a hash of
    them, so a variant never replaces the preset's world.
    """
    return vrlib_home() / "worlds" / f"{preset}-seed{seed}{_overrides_suffix(overrides)}"


def _overrides_suffix(overrides: dict | None) -> str:
    """``-<12 hex digits>`` naming a set of world overrides ("" for none)."""
    if not overrides:
        return ""
    return "-" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:12]


def expert_path(
    preset: str = "default",
    seed: int = 0,
    model: str = "vrlib-tiny",
    overrides: dict | None = None,
    without_words: tuple[str, ...] | list[str] = (),
) -> Path:
    """Checkpoint of the image-text expert ``model`` pretrained on that world's images; a world
    whose ``overrides`` change its stills (``motion_image_share``) has an expert of its own, and
    so has one that never saw ``without_words``, shapes or colours (``-without-square``)."""
    without = "-without-" + "-".join(sorted(set(without_words))) if without_words else ""
    name = f"{model}-{preset}-seed{seed}{_overrides_suffix(overrides)}{without}.pt"
    return vrlib_home() / "experts" / name


def feature_cache_dir() -> Path:
    """Default on-disk cache of frame and text features."""
    return vrlib_home() / "features"
