"""Where generated data lives.

Why: the default world and the pretrained expert are made by code, are hundreds of MB, and do
not belong in git. They live under ``$VRLIB_HOME`` (default ``~/.cache/vrlib``), like torch hub's
cache, keyed by preset and seed so that different presets never overwrite each other.
"""

from __future__ import annotations

import os
from pathlib import Path


def vrlib_home() -> Path:
    """Root of generated data: ``$VRLIB_HOME`` or ``~/.cache/vrlib``."""
    return Path(os.environ.get("VRLIB_HOME", Path.home() / ".cache" / "vrlib")).expanduser()


def world_dir(preset: str = "default", seed: int = 0) -> Path:
    """Folder of the embedded synthetic world for ``preset`` and ``seed``."""
    return vrlib_home() / "worlds" / f"{preset}-seed{seed}"


def expert_path(preset: str = "default", seed: int = 0, model: str = "vrlib-tiny") -> Path:
    """Checkpoint of the image-text expert ``model`` pretrained on that world's images."""
    return vrlib_home() / "experts" / f"{model}-{preset}-seed{seed}.pt"


def feature_cache_dir() -> Path:
    """Default on-disk cache of frame and text features."""
    return vrlib_home() / "features"
