"""Parameter files: read, refused with the file and key named, checked against the disk.

Why apart from ``vrlib.report``: a parameter file is read before anything heavy is imported
(papermill, open_clip), so a typo is refused at once; and the YAML is read strictly (a key written
twice is an error, not a silent "last one wins"). ``vrlib.report`` re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from vrlib.studies import get_study, parameters_dir


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
    from vrlib.studies.common import check_inputs

    params = load_params(study, path)
    try:
        check_inputs(params)
    except ValueError as e:
        raise ParamsError(f"{path}: {e}") from None
    return params
