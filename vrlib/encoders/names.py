"""Model names and the spelling of ``pretrained``, checked without importing open_clip.

Why apart from :mod:`vrlib.encoders.weights`: a parameter file is validated before a notebook
starts, and importing open_clip (with torch, timm and transformers behind it) takes several
seconds; a file with a typo should be refused in well under one. The architectures are the JSON
configs in open_clip's ``model_configs`` folder and in ``vrlib/model_configs``, read as files;
only a pretrained *tag* (``openai``) needs open_clip's table of tags, imported then.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

MODEL_CONFIG_DIR = Path(__file__).parents[1] / "model_configs"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@functools.cache
def _config_files() -> dict[str, Path]:
    """``{architecture: JSON config}`` of open_clip and vrlib (vrlib's win a tie, as registered)."""
    spec = importlib.util.find_spec("open_clip")  # finds the package without running it
    dirs = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])]
    dirs.append(MODEL_CONFIG_DIR)
    return {p.stem: p for d in dirs if d.is_dir() for p in sorted(d.glob("*.json"))}


def known_models() -> list[str]:
    """Every architecture open_clip can build here, vrlib's own included, sorted."""
    return sorted(_config_files())


def model_config(model_name: str) -> dict[str, Any] | None:
    """The architecture's JSON config, or None if there is no such model.

    Once open_clip is imported, its registry is asked too: a config added at run time
    (``open_clip.add_model_config``) is a model like any other.
    """
    path = _config_files().get(model_name)
    if path is not None:
        return json.loads(path.read_text())
    if "open_clip" in sys.modules:
        from open_clip.factory import get_model_config

        return get_model_config(model_name)
    return None


def check_model_name(model_name: str) -> None:
    """Raise ValueError listing the known models unless open_clip (or vrlib's configs) has it."""
    if model_config(model_name) is None:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(known_models())}")


def is_vit(model_name: str) -> bool:
    """Whether the model's image tower is open_clip's own ViT (a CLS token and transformer
    blocks), not a ResNet (``layers`` a list) or a timm tower."""
    vision = (model_config(model_name) or {}).get("vision_cfg", {})
    return isinstance(vision.get("layers"), int) and not vision.get("timm_model_name")


def looks_like_path(value: str) -> bool:
    """A ``pretrained`` value meant as a file: it has a folder separator or a checkpoint suffix."""
    return "/" in value or os.sep in value or value.lower().endswith(CHECKPOINT_SUFFIXES)


def check_pretrained(
    model_name: str, pretrained: str | os.PathLike, must_exist: bool = True
) -> Path | None:
    """The local checkpoint ``pretrained`` names, or None for an open_clip tag of ``model_name``.

    Why apart: parameter files are checked with this before a notebook starts, and
    :func:`~vrlib.encoders.load_clip` resolves ``pretrained`` with it, so the two agree.
    ``must_exist=False`` checks only the spelling (a tag, or something that looks like a path).

    Raises:
        FileNotFoundError: it looks like a path and no such file exists (``must_exist``).
        ValueError: neither a tag of the model nor a path.
    """
    local_file = Path(pretrained).expanduser()
    if looks_like_path(str(pretrained)):
        if local_file.is_file() or not must_exist:
            return local_file
        raise FileNotFoundError(f"{local_file}: checkpoint file not found")
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    if get_pretrained_cfg(model_name, str(pretrained)):
        return None
    if local_file.is_file():
        return local_file
    tags = list_pretrained_tags_by_model(model_name)
    raise ValueError(
        f"pretrained={pretrained!r} is neither a tag of {model_name} (known: {tags or 'none'}) "
        "nor an existing file"
    )


_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:\d+)?")


def check_device(device: str, allow_auto: bool = False) -> str:
    """``device`` if torch can read it (``cpu``, ``cuda``, ``cuda:1``, ``mps``; ``auto`` where
    allowed), else ValueError listing the spellings. Whether the machine has it is checked later."""
    if (allow_auto and device == "auto") or _DEVICE.fullmatch(device):
        return device
    valid = "auto, " if allow_auto else ""
    raise ValueError(f"unknown device {device!r}; valid: {valid}cpu, cuda, cuda:N, mps, xpu")
