"""Where an encoder's weights come from: open_clip tags and local checkpoint files.

A tag is resolved in the local caches (or downloaded when the host answers); a local file is read
and checked against the architecture.

No silent waiting on a network that is not there: a tag whose weights are not cached fails at
once with :class:`WeightsUnavailableError`, which says how to pass a local file instead. A local
file (.safetensors, .bin, .pt/.pth; a state dict, a vrlib checkpoint or ``{"state_dict": ...}``)
that does not fit the architecture raises :class:`CheckpointMismatchError`.

Importing this module registers the JSON model configs in ``vrlib/model_configs`` (``vrlib-tiny``,
the small CLIP that :mod:`vrlib.pretrain` trains on the embedded world) with open_clip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg

from vrlib.encoders.names import (  # noqa: F401  (re-exported: load_clip and callers use them here)
    CHECKPOINT_SUFFIXES,
    MODEL_CONFIG_DIR,
    check_model_name,
    check_pretrained,
    looks_like_path,
)

open_clip.add_model_config(MODEL_CONFIG_DIR)


_HF_DEFAULT_FILENAME = "open_clip_pytorch_model.bin"


_OPENAI_URL_CACHE = Path("~/.cache/clip").expanduser()  # open_clip's default for url downloads


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights named by a tag are neither cached nor downloadable right now.

    Attributes:
        model_name: the open_clip architecture, e.g. ``"ViT-B-32"``.
        tag: the pretrained tag, e.g. ``"openai"``.
    """

    def __init__(self, model_name: str, tag: str, reason: str, sources: list[str]):
        self.model_name = model_name
        self.tag = tag
        where = "; ".join(sources) or "no source listed"
        super().__init__(
            f"pretrained weights {model_name}:{tag} are not cached and cannot be downloaded "
            f"({reason}). Sources: {where}. Either download them once where the network is "
            f"reachable (they are then cached), or give a local checkpoint file instead: "
            f"`--pretrained FILE` on the command line, `pretrained: FILE` under `encoder:` in a "
            f"parameter file, load_clip({model_name!r}, pretrained=FILE) in Python "
            f"(.safetensors, .bin, .pt/.pth; an open_clip state dict or a vrlib checkpoint)."
        )


class CheckpointMismatchError(ValueError):
    """A local checkpoint's keys or shapes do not fit the architecture it is loaded into."""


def _is_offline_env() -> bool:
    """The environment variables huggingface_hub honours to stay offline."""
    return any(
        os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _host_reachable(host: str, port: int = 443, timeout: float = 0.8) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds.

    Why a thread: DNS resolution inside ``create_connection`` has no timeout of its own, and an
    unreachable resolver can block for much longer than the connect timeout.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.2)
    return bool(result and result[0])


def _hf_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """Repo id and the file names open_clip would try for an ``hf_hub`` entry, best first."""
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or _HF_DEFAULT_FILENAME
    names = [filename]
    if filename == _HF_DEFAULT_FILENAME:
        names.insert(0, "open_clip_model.safetensors")
    elif filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return repo_id, names


def _cached_weights(tag_cfg: dict, cache_dir: str | None) -> str | None:
    """Local path of a tag's weights if open_clip's or huggingface_hub's cache has them."""
    if tag_cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, names = _hf_candidates(tag_cfg["hf_hub"])
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    if tag_cfg.get("url"):
        folder = Path(cache_dir).expanduser() if cache_dir else _OPENAI_URL_CACHE
        target = folder / os.path.basename(urlparse(tag_cfg["url"]).path)
        if target.is_file():
            return str(target)
    return None


def _download_host(tag_cfg: dict) -> str:
    """The host open_clip would download a tag from (it prefers the HF hub when listed)."""
    if tag_cfg.get("hf_hub"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return urlparse(endpoint).hostname or "huggingface.co"
    return urlparse(tag_cfg.get("url", "")).hostname or ""


def _tag_sources(tag_cfg: dict) -> list[str]:
    sources = []
    if tag_cfg.get("hf_hub"):
        sources.append(f"hf-hub {tag_cfg['hf_hub']}")
    if tag_cfg.get("url"):
        sources.append(f"url {tag_cfg['url']}")
    return sources


def _resolve_tag(model_name: str, tag: str, cache_dir: str | None) -> str | None:
    """Cached file for ``tag``, ``None`` when it must (and can) be downloaded, else raise fast."""
    tag_cfg = get_pretrained_cfg(model_name, tag)
    cached = _cached_weights(tag_cfg, cache_dir)
    if cached:
        return cached
    if _is_offline_env():
        reason = "HF_HUB_OFFLINE is set"
    elif not _host_reachable(_download_host(tag_cfg)):
        reason = f"{_download_host(tag_cfg) or 'the download host'} is not reachable"
    else:
        return None
    raise WeightsUnavailableError(model_name, tag, reason, _tag_sources(tag_cfg))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read weights from a file and unwrap the containers people save them in.

    Accepted: a safetensors file; a torch file holding a state dict, a dict with ``"model"``
    (vrlib training checkpoints) or ``"state_dict"`` (open_clip training checkpoints), or a
    TorchScript archive (OpenAI's original ``.pt``). ``"module."`` prefixes left by
    DistributedDataParallel are stripped.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle with arbitrary objects, a truncated file, ...
            raise ValueError(f"{path}: cannot read as a torch checkpoint ({e})") from e
    if isinstance(obj, torch.jit.ScriptModule):
        obj = {
            k: v
            for k, v in obj.state_dict().items()
            if k not in ("input_resolution", "context_length", "vocab_size")
        }
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise ValueError(
            f"{path}: not a state dict of tensors (nor a dict with 'model' or 'state_dict' holding one)"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def check_checkpoint_fits(model_name: str, path: Path) -> None:
    """Raise :class:`CheckpointMismatchError` unless the file at ``path`` fits ``model_name``.

    Why: a parameter file's checkpoint is checked before a notebook starts. The model is built on
    torch's meta device (shapes only: no memory, no initialisation), so this costs reading the
    file, not building the model.
    """
    with torch.device("meta"), quiet_random_init_warning():
        model = open_clip.create_model(model_name, pretrained=None, device="meta")
    _checked_state(model, path)


def _load_local_weights(model: torch.nn.Module, path: Path) -> None:
    """Load ``path`` into ``model``, naming missing, unexpected and mis-shaped keys on mismatch."""
    model.load_state_dict(_checked_state(model, path), strict=True)


def _checked_state(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` converted for ``model``; CheckpointMismatchError naming the
    missing, unexpected and mis-shaped keys if it does not fit."""
    from open_clip.convert import convert_state_dict

    state = convert_state_dict(model, _read_state_dict(path))
    expected = model.state_dict()
    if "logit_scale" in state and state["logit_scale"].ndim != expected["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(expected["logit_scale"].shape)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape (file vs model)", shapes),
        ):
            if keys:
                parts.append(
                    f"{len(keys)} {label}: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
                )
        raise CheckpointMismatchError(
            f"{path}: does not match the architecture: {'; '.join(parts)}"
        )
    return state


class _RandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def quiet_random_init_warning():
    """Hide open_clip's "initialized randomly" warning while a model whose weights come next from a
    local file is built: the warning is false there (it stays for a truly random model)."""
    quiet, root = _RandomInitWarning(), logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
