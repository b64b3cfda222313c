"""A report run replaces its folder only on success, and its kernel imports this checkout's vrlib
(issue 10, §1). A one-cell fake study keeps each run to a kernel start."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from pydantic import BaseModel, ConfigDict

import vrlib
from vrlib import report
from vrlib.studies import StudySpec, params_file

NOTEBOOK_CODE = """
import pathlib, yaml, vrlib
from pydantic import BaseModel
from vrlib.report import StudyOutputs

class P(BaseModel):
    fail: bool = False

p = P(**yaml.safe_load(open(params_path)))
out = StudyOutputs("fake", p, out_dir)
(pathlib.Path(out_dir) / "vrlib_file.txt").write_text(vrlib.__file__)
out.add_rows([{"setting": "x", "split": "test", "direction": "t2v", "R@1": 1.0}])
out.write_metrics(protocol={})
if p.fail:
    raise RuntimeError("planned failure after writing metrics")
"""


class FakeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail: bool = False


@pytest.fixture()
def fake_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered-looking study whose notebook records which vrlib it imported."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    params = nbformat.v4.new_code_cell('params_path = ""\nout_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(NOTEBOOK_CODE)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, nb_dir / "99_fake.ipynb")
    spec = StudySpec(name="fake", notebook="99_fake.ipynb", params=FakeParams, title="fake")
    monkeypatch.setattr(report, "get_study", lambda name: spec)
    monkeypatch.setattr(params_file, "get_study", lambda name: spec)
    monkeypatch.setattr(report, "notebooks_dir", lambda: nb_dir)
    # As in a second checkout sharing the virtual environment: nothing points at this checkout.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return tmp_path


def _run(root: Path, fail: bool) -> Path:
    params = root / "default.yaml"
    params.write_text(f"fail: {str(fail).lower()}\n")
    return report.run_study("fake", params, out_root=root / "reports", readme=False)


@pytest.mark.slow
def test_kernel_imports_this_checkout_and_failed_rerun_keeps_old_report(fake_study: Path):
    out = _run(fake_study, fail=False)
    assert (out / "vrlib_file.txt").read_text() == vrlib.__file__
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"metrics.json", "99_fake.ipynb"} <= before.keys()

    with pytest.raises(Exception, match="planned failure") as err:
        _run(fake_study, fail=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old report untouched
    failed = out.with_name(".default.failed")
    assert str(failed) in "\n".join(getattr(err.value, "__notes__", []))
    assert (failed / "99_fake.ipynb").is_file()
    assert [p.name for p in out.parent.iterdir() if ".running-" in p.name] == []
    assert report._load_runs(fake_study / "reports") == {
        "fake": {"default": report.read_json(out / "metrics.json")}
    }


def test_outputs_refuse_another_checkouts_vrlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(report.CHECKOUT_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match=f"run from the checkout {tmp_path}"):
        report.StudyOutputs("fake", FakeParams(), tmp_path / "out")
    monkeypatch.setenv(report.CHECKOUT_ENV, str(report.checkout_root()))
    report.StudyOutputs("fake", FakeParams(), tmp_path / "out")  # the same checkout: fine


def test_kernel_environment_puts_this_checkout_first_and_restores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv(report.CHECKOUT_ENV, raising=False)
    import os

    with report.kernel_environment():
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [
            str(report.checkout_root()),
            "/elsewhere",
        ]
        assert os.environ[report.CHECKOUT_ENV] == str(report.checkout_root())
    assert os.environ["PYTHONPATH"] == "/elsewhere" and report.CHECKOUT_ENV not in os.environ


def test_portable_paths_leave_no_machine_path_in_a_report(tmp_path, monkeypatch):
    from vrlib.report import checkout_root, portable_paths

    monkeypatch.setenv("VRLIB_HOME", str(tmp_path / "home"))
    running, final = tmp_path / ".default.running-1", tmp_path / "default"
    running.mkdir()
    text = (
        f'{{"input_path": "{checkout_root()}/notebooks/x.ipynb", "out": "{running}/m.json", '
        f'"world": "{tmp_path}/home/worlds/default-seed0"}}'
    )
    (running / "x.ipynb").write_text(text)
    (running / "fig.png").write_bytes(str(checkout_root()).encode())  # binary files untouched
    portable_paths(running, {running: final})
    out = (running / "x.ipynb").read_text()
    assert out == (
        '{"input_path": "./notebooks/x.ipynb", "out": "'
        + str(final)
        + '/m.json", "world": "$VRLIB_HOME/worlds/default-seed0"}'
    )
    assert (running / "fig.png").read_bytes() == str(checkout_root()).encode()


def test_portable_paths_replace_whole_path_components_longest_root_first(tmp_path, monkeypatch):
    """Checkout /x/proj and VRLIB_HOME=/x/proj_home: the home is not the checkout + '_home'."""
    monkeypatch.setattr(report, "checkout_root", lambda: Path("/x/proj"))
    monkeypatch.setenv("VRLIB_HOME", "/x/proj_home")
    monkeypatch.setenv("HOME", "/x/proj/.user")
    (tmp_path / "m.json").write_text(
        '{"nb": "/x/proj/notebooks/a.ipynb", "world": "/x/proj_home/worlds/w", '
        '"other": "/x/project/z", "root": "/x/proj", "user": "/x/proj/.user/data", '
        '"nested": "/y/x/proj/q"}\nran in /x/proj.\n'
    )
    report.portable_paths(tmp_path)
    assert (tmp_path / "m.json").read_text() == (
        '{"nb": "./notebooks/a.ipynb", "world": "$VRLIB_HOME/worlds/w", '
        '"other": "/x/project/z", "root": ".", "user": "~/data", '
        '"nested": "/y/x/proj/q"}\nran in ..\n'
    )


def test_a_run_removes_the_folders_of_dead_runs_and_keeps_live_ones(tmp_path, monkeypatch):
    """A report killed with its parent leaves `.NAME.running-<pid>/`; the next run removes it."""
    import os
    import subprocess

    import papermill

    gone = subprocess.Popen(["true"])
    gone.wait()
    study_dir = tmp_path / "reports" / "zero_shot_aggregation"
    dead = study_dir / f".smoke.running-{gone.pid}"
    live = study_dir / f".smoke.running-{os.getppid()}"
    other = study_dir / f".default.running-{gone.pid}"  # another report's: not this run's to judge
    for folder in (dead, live, other):
        folder.mkdir(parents=True)

    def notebook_ran(nb_in, nb_out, **kw):
        Path(nb_out).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", notebook_ran)
    params = report.params_path("zero_shot_aggregation", "smoke")
    out = report.run_study("zero_shot_aggregation", params, tmp_path / "reports", readme=False)
    assert out == study_dir / "smoke" and (out / "01_zero_shot_aggregation.ipynb").is_file()
    assert not dead.exists() and live.is_dir() and other.is_dir()
    assert sorted(p.name for p in study_dir.iterdir()) == sorted([live.name, other.name, "smoke"])


@pytest.mark.slow
def test_a_report_kernel_says_nothing_about_unencrypted_tcp(fake_study: Path, capfd):
    """Issue 21, section 7: IPKernelApp warned "running over TCP without encryption" per report."""
    _run(fake_study, fail=False)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    assert not list(fake_study.glob("notebooks/kernel-ipc*"))  # no sockets left in the cwd
