"""One captioner of study 03 as a parameter file names it: label, registered name, options.

Why apart from :mod:`vrlib.studies.captions.study` (which re-exports it): its checks (a
registered name, options its builder takes, the files they name) are read on their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from vrlib.encoders.names import looks_like_path
from vrlib.studies.common import Strict

# Options of the registered captioners that name files or folders on disk.
_CAPTIONER_FILE_OPTIONS = ("checkpoint", "path", "gpt2")


class CaptionerSpec(Strict):
    """One captioner of the study: its table label (``C``, ``B``) and how to load it.

    ``options`` go to ``vrlib.captions.load_captioner``; for ``clipcap-tiny`` / ``blip-tiny`` the
    world's ``preset`` and ``seed`` default to ``data.world_preset`` / ``data.world_seed``, and a
    real ``clipcap`` gets the study's encoder as its ``encoder``.
    """

    label: str = Field(min_length=1)
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from vrlib.captions import CAPTIONERS

        if name not in CAPTIONERS.names():
            raise ValueError(f"unknown captioner {name!r}; valid: {', '.join(CAPTIONERS.names())}")
        return name

    @field_validator("label")
    @classmethod
    def _plain(cls, label: str) -> str:
        if "+" in label or "/" in label:
            raise ValueError(f"captioner label {label!r} must not contain '+' or '/'")
        return label

    @model_validator(mode="after")
    def _known_options(self) -> CaptionerSpec:
        """Each option is a keyword of the captioner's builder (named with the valid ones)."""
        import inspect

        from vrlib.captions import CAPTIONERS

        valid = list(inspect.signature(CAPTIONERS.get(self.name)).parameters)
        unknown = sorted(set(self.options) - set(valid))
        if unknown:
            raise ValueError(
                f"captioner {self.name!r}: unknown option(s) {unknown}; valid: {', '.join(valid)}"
            )
        return self

    def check_files(self, where: str) -> None:
        """The files its options name exist (a checkpoint, a ``save_pretrained`` folder)."""
        for key in _CAPTIONER_FILE_OPTIONS:
            value = self.options.get(key)
            if key == "gpt2" and value is not None and not looks_like_path(str(value)):
                continue  # a model name, resolved in the Hugging Face cache by the captioner
            if value is not None and not Path(str(value)).expanduser().exists():
                raise ValueError(
                    f"{where}.options.{key}: {Path(str(value)).expanduser()}: not found"
                )
