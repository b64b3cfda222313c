"""A micro open_clip architecture for the space-time model's tests (fast on a loaded CPU)."""

from __future__ import annotations

import json
from pathlib import Path

MICRO = "vrlib-test-micro"
MICRO_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_micro(folder: Path) -> str:
    """Write the micro config to ``folder`` and register it with open_clip; returns its name."""
    import open_clip

    import vrlib.encoders.weights  # noqa: F401  (registers vrlib's own configs first)

    path = folder / f"{MICRO}.json"
    path.write_text(json.dumps(MICRO_CONFIG))
    open_clip.add_model_config(path)
    return MICRO
