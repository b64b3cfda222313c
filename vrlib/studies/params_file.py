"""Parameter files: read, refused with the file and key named, checked against the disk
(:func:`check_inputs`: data, splits, checkpoints, devices, caches, and a study's own ``check_files``).

Why apart from ``vrlib.report``: a parameter file is read before anything heavy is imported
(papermill, open_clip), so a typo is refused at once; and the YAML is read strictly (a key written
twice is an error, not a silent "last one wins"). ``vrlib.report`` re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from vrlib.studies import get_study, parameters_dir

if TYPE_CHECKING:  # imported when checking: its defaults import the data layer (torch)
    from vrlib.studies.common import DataParams, EncoderParams


class ParamsError(ValueError):
    """A parameter file that is missing, not YAML, or has a bad or unknown key."""


class DuplicateKeyError(ValueError):
    """A key written twice in one mapping of a YAML file (PyYAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping, naming the key and line."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool | None):
                continue  # an unhashable key: SafeLoader reports it itself
            if key in seen:
                raise DuplicateKeyError(
                    f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line}); "
                    "only one value can hold"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def params_path(study: str, name: str = "default") -> Path:
    """``parameters/STUDY/NAME.yaml``."""
    return parameters_dir() / study / f"{name}.yaml"


def load_params(study: str, path: str | Path | None = None) -> BaseModel:
    """Read and validate a study's parameter file; errors name the file and the key.

    Args:
        study: registered study name (e.g. ``zero_shot_aggregation``).
        path: YAML file; ``None`` reads ``parameters/STUDY/default.yaml``.
    """
    spec = get_study(study)
    path = Path(path) if path is not None else params_path(study)
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except DuplicateKeyError as e:
        raise ParamsError(f"{path}: {e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: not valid YAML ({e})") from None
    if raw is None or raw == {}:
        raise ParamsError(
            f"{path}: empty parameter file; an empty file would silently run every default "
            f"(copy {params_path(study)} and edit it)"
        )
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return spec.params.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise ParamsError(f"{path}: {problems}") from None


def check_params(study: str, path: str | Path) -> BaseModel:
    """:func:`load_params`, then what the file names on disk (data root, splits read by the
    dataset's reader, checkpoint file), all before a notebook starts; errors name file and key."""
    params = load_params(study, path)
    try:
        check_inputs(params)
    except ValueError as e:
        raise ParamsError(f"{path}: {e}") from None
    return params


def check_inputs(params) -> None:
    """What parameter files name on disk, checked before any work starts; errors name the key.

    The data root must be a folder and each split must read with the dataset's own reader
    (annotation files present and well-formed, the split known to files that define it); a
    checkpoint path must be a file. The embedded world (``root: null``) is built on demand and
    not checked here.

    Args:
        params: a study's parameters with ``data``, ``encoder`` and ``split_keys()``.
    """
    from vrlib.studies.common import EXPERT

    cache_dir = getattr(params, "cache_dir", None)
    if cache_dir is not None and Path(cache_dir).expanduser().exists():
        if not Path(cache_dir).expanduser().is_dir():
            raise ValueError(f"cache_dir: {Path(cache_dir).expanduser()} is a file, not a folder")
    extra = getattr(params, "check_files", None)
    if extra is not None:
        extra()  # what a study names on disk beyond data and encoder (the browser's index)
    for key, device in _devices(params).items():
        check_device_available(key, device)
    data, enc = getattr(params, "data", None), getattr(params, "encoder", None)
    if data is not None and data.root is not None:
        check_split_files(data, params.split_keys())
    if enc is not None and enc.pretrained not in (None, EXPERT):
        check_checkpoint(enc)


def check_split_files(data: DataParams, split_keys: dict[str, str]) -> None:
    """The data root is a folder, each split reads with the dataset's reader, and at least one
    of its videos is there (a caption file whose videos are all missing is no dataset)."""
    from vrlib.data.datasets import DatasetError, load_dataset

    root = Path(data.root).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.root: {root}: folder not found")
    kw = {"video_dir": data.video_dir} if data.video_dir else {}
    for key, split in split_keys.items():
        try:
            ds = load_dataset(data.dataset, root, split, on_error="skip", **kw)
        except DatasetError as e:
            raise ValueError(f"{key} ({split!r}): {e}") from None
        if not ds.videos:
            first = f"; the first: {ds.skipped[0][1]}" if ds.skipped else ""
            raise ValueError(
                f"{key} ({split!r}): none of its {len(ds.skipped)} videos is there{first} "
                "(set data.video_dir if the videos live elsewhere)"
            )


def check_checkpoint(enc: EncoderParams) -> None:
    """A local checkpoint exists and fits ``enc.model`` (keys and shapes, on a model built on
    torch's meta device: no memory, no initialisation); a tag is left to ``load_clip``."""
    from vrlib.encoders import CheckpointMismatchError, check_pretrained

    try:
        local = check_pretrained(enc.model, enc.pretrained)
    except FileNotFoundError as e:
        raise ValueError(f"encoder.pretrained: {e}") from None
    if local is None:
        return
    from vrlib.encoders.weights import check_checkpoint_fits

    try:
        check_checkpoint_fits(enc.model, local)
    except (CheckpointMismatchError, ValueError) as e:
        raise ValueError(f"encoder.pretrained: {e} (encoder.model is {enc.model!r})") from None


def _devices(params: Any) -> dict[str, str]:
    """``{key: device}`` of every device a study's parameters name (``encoder.device``,
    ``train.device``), None and ``auto`` left out."""
    found = {}
    for section in ("encoder", "train"):
        device = getattr(getattr(params, section, None), "device", None)
        if isinstance(device, str) and device != "auto":
            found[f"{section}.device"] = device
    return found


def check_device_available(key: str, device: str) -> None:
    """A CUDA or MPS device asked for must exist on this machine (checked before any work)."""
    import torch

    kind, _, number = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count()
        if count <= (int(number) if number else 0):
            raise ValueError(f"{key}: {device!r}, but this machine has {count} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{key}: 'mps', but MPS is not available on this machine")
