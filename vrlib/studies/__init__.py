"""Studies: one parameter model and a few functions per study; the notebooks only call these.

Place in the data flow: above everything that computes (data, encoders, features, aggregate,
models, losses, train), below ``vrlib.report`` (which runs a study's notebook and writes what it
hands over) and ``vrlib.cli``; import-linter's contract in pyproject.toml keeps it so. Exports the
study registry (``register_study``, ``get_study``, ``study_names``); ``common`` holds the shared
parameter pieces and feature pipeline, ``toolkit`` what every study needs to set its numbers beside
a paper's (results rows, seeds, claims, bootstrap CIs, reading words).

Why a registry: ``python -m vrlib report STUDY`` and ``make reproduce`` find every study here, and
a bad parameter file fails with the key's name before a notebook starts. Adding a study is one
module with ``@register_study(...)`` on its parameter model, plus its notebook; a study with
several modules is a package (``temporal/`` for study 02, ``captions/`` for 03, ``curriculum/``
for 04), so one study is read in one folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from vrlib.registry import Registry


@dataclass(frozen=True)
class StudySpec:
    """A study: its name, the notebook that runs it and its validated parameter model."""

    name: str
    notebook: str
    params: type[BaseModel]
    title: str


STUDIES: Registry[StudySpec] = Registry("study")


def register_study(name: str, notebook: str, title: str):
    """Class decorator registering a parameter model as study ``name`` run by ``notebook``."""

    def add(model: type[BaseModel]) -> type[BaseModel]:
        STUDIES.register(name)(StudySpec(name=name, notebook=notebook, params=model, title=title))
        return model

    return add


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (studies run from a source checkout)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def parameters_dir() -> Path:
    """The repository's ``parameters/`` folder."""
    return Path(__file__).resolve().parents[2] / "parameters"


def _import_all() -> None:
    """Import every study module so that its ``@register_study`` runs."""
    from vrlib.studies import failure_analysis, query_browser, zero_shot  # noqa: F401
    from vrlib.studies.captions import study as _captions  # noqa: F401
    from vrlib.studies.curriculum import params as _curriculum  # noqa: F401
    from vrlib.studies.temporal import study as _temporal  # noqa: F401


def get_study(name: str) -> StudySpec:
    """The study registered as ``name`` (KeyError lists the valid names)."""
    _import_all()
    return STUDIES.get(name)


def study_names() -> list[str]:
    """Registered studies in notebook order (01, 02, ...), the order reports list them."""
    _import_all()
    return sorted(STUDIES.names(), key=lambda name: STUDIES.get(name).notebook)


# Where each study rebuilds its reading from a report's metrics.json alone (module, function).
_READINGS = {
    "zero_shot_aggregation": ("zero_shot", "reading_from_metrics"),
    "temporal_ablation": ("temporal.reading", "reading_from_metrics"),
    "caption_selection": ("captions.report", "reading_from_metrics"),
    "curriculum": ("curriculum.claims", "reading_from_metrics"),
    "failure_analysis": ("failure_analysis", "reading_from_metrics"),
}


def rebuild_reading(doc: dict) -> str | None:
    """A report's reading, rebuilt from its metrics.json ``doc`` alone; None for a study that
    writes no reading.

    Why: a reading must follow from the numbers the report keeps, with no word from anywhere
    else; tests compare this with the reading the notebook wrote.
    """
    import importlib

    where = _READINGS.get(doc["study"])
    if where is None:
        return None
    module = importlib.import_module(f"vrlib.studies.{where[0]}")
    return getattr(module, where[1])(doc)
