"""Every study notebook runs end to end under papermill at its smoke.yaml and writes its outputs;
nbval (``--nbval-lax``) runs the clean notebooks as stored, with ``VRLIB_PARAMS=smoke``.

These are the slowest tests (each starts a kernel); they share the session's smoke world and
smoke expert, so the world is generated and the expert trained once.

Why nbval beside papermill: papermill injects a cell with the parameters, so it never runs a
notebook exactly as a person opening it does. nbval executes the stored cells, so a parameters
cell that no longer reads its file, or a cell that only works after papermill's, fails here. Its
parameters cell reads ``VRLIB_PARAMS`` (a parameter file's name) and ``VRLIB_OUT_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_committed_notebooks_have_no_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), (
            f"{path}: no parameters cell"
        )


#: nbval runs the notebooks that do not train (01, 05, 06). Measured with the papermill runs in one
#: session on a loaded 2-core machine: nbval of all six added 621 s (after papermill had filled the
#: caches), 553 s of it for 02-04, whose smoke runs train models; their stored cells are the ones
#: papermill runs, and every parameters cell is checked below without a kernel.
NBVAL_STUDIES = ("zero_shot_aggregation", "failure_analysis", "query_browser")


@pytest.mark.slow
@pytest.mark.parametrize("study", NBVAL_STUDIES)
def test_clean_notebook_executes_as_stored_under_nbval(study, smoke_expert, tmp_path):
    """``pytest --nbval-lax`` on the committed notebook, smoke.yaml picked by its parameters cell."""
    from vrlib.report import kernel_environment

    notebook = ROOT / "notebooks" / get_study(study).notebook
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "-q",
        "-p",
        "no:cacheprovider",
        str(notebook),
    ]
    env_keys = {"VRLIB_PARAMS": "smoke", "VRLIB_OUT_DIR": str(out)}
    with kernel_environment():  # the kernel imports this checkout's vrlib
        env = {**os.environ, **env_keys}
        done = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
        )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
    doc = json.loads(
        (out / "metrics.json").read_text()
    )  # the stored cells wrote to VRLIB_OUT_DIR ...
    assert doc["params"]["data"]["world_preset"] == "smoke"  # ... at smoke.yaml


@pytest.mark.parametrize("study", study_names())
def test_parameters_cell_reads_the_parameter_name_and_output_folder_from_the_environment(
    study, monkeypatch, tmp_path
):
    """What nbval relies on: the stored parameters cell picks ``VRLIB_PARAMS`` and ``VRLIB_OUT_DIR``."""
    nb = nbformat.read(ROOT / "notebooks" / get_study(study).notebook, as_version=4)
    source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    monkeypatch.delenv("VRLIB_PARAMS", raising=False)
    monkeypatch.delenv("VRLIB_OUT_DIR", raising=False)
    scope: dict = {}
    exec(source, scope)
    assert (
        scope["params_path"] == f"../parameters/{study}/default.yaml" and scope["out_dir"] is None
    )
    monkeypatch.setenv("VRLIB_PARAMS", "smoke")
    monkeypatch.setenv("VRLIB_OUT_DIR", str(tmp_path))
    exec(source, scope)
    assert scope["params_path"] == f"../parameters/{study}/smoke.yaml"
    assert (ROOT / "notebooks" / scope["params_path"]).resolve().is_file()
    assert scope["out_dir"] == str(tmp_path)
