"""Every study notebook runs end to end under papermill at its smoke.yaml and writes its outputs.

These are the slowest tests (each starts a kernel); they share the session's smoke world and
smoke expert, so the world is generated and the expert trained once.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from vrlib.report import run_study
from vrlib.studies import get_study, rebuild_reading, study_names

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"R@1", "R@5", "R@10", "MdR", "MnR", "StdR", "n"}


@pytest.mark.slow
@pytest.mark.parametrize("study", study_names())
def test_notebook_runs_at_smoke_parameters(study, smoke_expert, tmp_path):
    out = run_study(study, ROOT / "parameters" / study / "smoke.yaml", out_root=tmp_path)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["study"] == study and doc["rows"], "metrics.json has no rows"
    assert doc["params"]["data"]["world_preset"] == "smoke"
    for row in doc["rows"]:
        assert METRICS <= row.keys() and row["direction"] in ("t2v", "v2t")
        assert 0.0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 100.0
    executed = nbformat.read(out / get_study(study).notebook, as_version=4)
    errors = [
        o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    assert list(out.glob("*.png")) and list(out.glob("*.csv"))
    assert (tmp_path / "README.md").exists()
    if doc.get("reading") is not None:  # the reading is a function of metrics.json alone
        assert rebuild_reading(doc) == doc["reading"]
