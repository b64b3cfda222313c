"""Run a study notebook with papermill and write its outputs in one shape every study shares.

Why: results must be comparable by code. Each run of ``notebooks/NN_STUDY.ipynb`` at
``parameters/STUDY/NAME.yaml`` goes to ``reports/STUDY/NAME/``: the executed notebook, one
``metrics.json`` (study, params, protocol, versions, seed, inputs, wall time, rows), tables as CSV and
Markdown, figures as PNG. ``reports/README.md`` is then rebuilt from every metrics.json found,
beside the papers' figures (``vrlib.papers``). Parameters are validated before the notebook
starts, so a bad file fails in a second with the key named.

The README roll-up lives in ``vrlib.rollup`` and the reading of parameter files in
``vrlib.studies.params_file``; both are re-exported here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vrlib.io import atomic_write_text, read_json, replace_dir, write_json
from vrlib.rollup import _load_runs, build_readme  # noqa: F401  (re-exported)
from vrlib.studies import get_study, notebooks_dir, study_names
from vrlib.studies.params_file import (  # noqa: F401  (re-exported: the report's API)
    DuplicateKeyError,
    ParamsError,
    check_params,
    load_params,
    params_path,
)


def versions() -> dict[str, str]:
    """Versions of what produced a result (Python, torch, open_clip, numpy, vrlib)."""
    import numpy
    import open_clip
    import torch

    import vrlib

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "numpy": numpy.__version__,
        "vrlib": vrlib.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def markdown_table(df) -> str:
    """A pandas DataFrame as a GitHub Markdown table (floats to 2 decimals), no extra dependency."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.2f}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


class StudyOutputs:
    """What a notebook writes: tables, figures and the one metrics.json of the run.

    Created at the top of a study notebook (its clock starts then); ``out_dir=None`` writes to
    ``reports/STUDY/scratch/`` so an interactive session never overwrites a committed report.
    """

    def __init__(self, study: str, params: BaseModel, out_dir: str | Path | None = None) -> None:
        check_checkout()
        self.study = study
        self.params = params
        root = Path(__file__).resolve().parents[1] / "reports"
        self.out_dir = Path(out_dir) if out_dir else root / study / "scratch"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.rows: list[dict[str, Any]] = []

    def table(self, name: str, df) -> Path:
        """Save ``df`` as ``NAME.csv`` and ``NAME.md``; returns the CSV path."""
        atomic_write_text(self.out_dir / f"{name}.md", markdown_table(df))
        return atomic_write_text(self.out_dir / f"{name}.csv", df.to_csv(index=False))

    def figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as ``NAME.png`` (written to a temp name, then renamed)."""
        path = self.out_dir / f"{name}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        tmp.replace(path)
        return path

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Add result rows (``setting``, ``split``, ``direction`` and the metrics).

        Studies make them with ``vrlib.studies.toolkit.rows_from_metrics``.
        """
        for r in rows:
            missing = {"setting", "split", "direction"} - r.keys()
            if missing:
                raise ValueError(f"metrics row {r} lacks {sorted(missing)}")
        self.rows.extend(rows)

    def write_metrics(self, protocol: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
        """Write ``metrics.json`` with every row added so far."""
        from vrlib.studies.inputs import study_inputs

        seed = getattr(self.params, "seed", None)
        doc = {
            "study": self.study,
            "params": self.params.model_dump(mode="json"),
            "protocol": protocol,
            "versions": versions(),
            "seed": seed,
            "inputs": study_inputs(self.params),
            "wall_time_s": round(time.time() - self.started, 2),
            "rows": self.rows,
        }
        if extra:
            doc.update(extra)
        return write_json(self.out_dir / "metrics.json", doc)


def run_study(
    study: str,
    params: str | Path | None = None,
    out_root: str | Path = "reports",
    readme: bool = True,
) -> Path:
    """Execute ``notebooks/NN_STUDY.ipynb`` with papermill into ``OUT_ROOT/STUDY/NAME/``.

    The parameter file is validated first. The notebook runs into a fresh hidden sibling folder
    that replaces ``NAME/`` only when it succeeds, so a failed rerun never leaves the previous
    run's metrics, tables and figures beside its notebook: the old report stays whole and the
    failed run is kept in ``.NAME.failed/`` (named in the error). The kernel imports the ``vrlib``
    of this checkout (see :func:`kernel_environment`). Returns the output folder.
    """
    spec = get_study(study)
    path = Path(params) if params is not None else params_path(study)
    check_params(
        study, path
    )  # fail fast, naming the key (papermill and open_clip not imported yet)
    import papermill

    out_dir = Path(out_root).resolve() / study / path.stem
    remove_dead_runs(out_dir)
    work = out_dir.with_name(f".{out_dir.name}.running-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    nb_in = notebooks_dir() / spec.notebook
    started = time.time()
    try:
        with kernel_environment(), tempfile.TemporaryDirectory(prefix="vrlib-kernel-") as sockets:
            papermill.execute_notebook(
                str(nb_in),
                str(work / spec.notebook),
                parameters={"params_path": str(path.resolve()), "out_dir": str(work)},
                cwd=str(notebooks_dir()),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                kernel_manager_class=local_socket_kernel_manager(Path(sockets)),
            )
        metrics = work / "metrics.json"
        if metrics.exists():
            doc = read_json(metrics)
            doc["notebook_wall_time_s"] = round(time.time() - started, 2)
            write_json(metrics, doc)
    except BaseException as err:
        failed = out_dir.with_name(f".{out_dir.name}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        work.rename(failed)
        err.add_note(f"[vrlib] the failed run is in {failed}; {out_dir} was left as it was")
        raise
    portable_paths(work, {work: out_dir})
    replace_dir(work, out_dir)
    if readme:
        build_readme(Path(out_root))
    return out_dir


def local_socket_kernel_manager(folder: Path) -> type:
    """A kernel manager class whose kernel talks over Unix sockets in ``folder``.

    Why: over TCP (jupyter_client's default, on 127.0.0.1) ipykernel warns on every report that
    its traffic is not encrypted; sockets in a private temporary folder are local to this user,
    and the kernel has nothing to warn about.
    """
    from jupyter_client.manager import AsyncKernelManager

    class LocalSocketKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport="ipc", ip=str(folder / "kernel"), **kwargs)

    return LocalSocketKernelManager


def remove_dead_runs(out_dir: Path) -> list[Path]:
    """Delete ``.NAME.running-<pid>/`` folders beside ``out_dir`` whose process is gone.

    Why: a run killed with its parent (kill -9, a closed terminal) cannot clean up after itself;
    the next run of the same report does. A folder of a live process (a concurrent run) stays.
    """
    from vrlib.io import _pid_alive

    removed = []
    for folder in sorted(out_dir.parent.glob(f".{out_dir.name}.running-*")):
        pid = folder.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_TEXT_OUTPUTS = (".ipynb", ".json", ".md", ".csv")


def portable_paths(folder: Path, renames: dict[Path, Path] | None = None) -> None:
    """Rewrite this machine's paths in a report's text files so that no machine path is committed.

    Why: papermill records the notebook's input and output paths and the parameters, and cells
    print the world's folder; committed reports must read the same on every machine. ``renames``
    first maps folders to their final place (the running folder to ``reports/STUDY/NAME``); then
    the checkout becomes ``.``, ``$VRLIB_HOME`` and ``~`` replace their values. Only whole path
    components are replaced, the longest root first: with the checkout at ``/x/proj``,
    ``/x/proj_home`` is not the checkout, and a ``$VRLIB_HOME`` inside the checkout stays itself.
    """
    from vrlib.paths import vrlib_home

    renamed = [(str(a), str(b)) for a, b in (renames or {}).items()]
    roots = [(str(checkout_root()), "."), (str(vrlib_home()), "$VRLIB_HOME")]
    roots.append((str(Path.home()), "~"))
    for path in sorted(folder.rglob("*")):
        if path.suffix not in _TEXT_OUTPUTS or not path.is_file():
            continue
        text = original = path.read_text(encoding="utf-8")
        for pairs in (renamed, roots):
            text = replace_path_roots(text, pairs)
        if text != original:
            atomic_write_text(path, text)


# A root ends where a path component ends: at a separator, the end, a quote, a space or
# punctuation that no file name ends with (a "." only when a sentence ends there).
_COMPONENT_END = r"""(?=$|[/\\\s"'`,;:)\]}>]|\.(?:$|[\s"']))"""
_COMPONENT_START = r"(?<![\w.~$-])"


def replace_path_roots(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with each root of ``pairs`` replaced where it is a whole path prefix, longest first."""
    pairs = sorted((p for p in pairs if p[0] not in ("", "/")), key=lambda p: -len(p[0]))
    if not pairs:
        return text
    new = dict(pairs)
    alternatives = "|".join(re.escape(old) for old, _ in pairs)
    pattern = re.compile(f"{_COMPONENT_START}(?:{alternatives}){_COMPONENT_END}")
    return pattern.sub(lambda m: new[m.group(0)], text)


#: Set for a report's kernel: the checkout whose ``vrlib`` the notebook must import.
CHECKOUT_ENV = "VRLIB_CHECKOUT"


def checkout_root() -> Path:
    """The repository this ``vrlib`` was imported from."""
    return Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Environment for a notebook kernel: this checkout first on ``PYTHONPATH``, and named.

    Why: the kernel is a new process; with a virtual environment shared by two checkouts (an
    editable install points at one of them) it would import the other checkout's ``vrlib`` and
    report its numbers as this one's. :func:`check_checkout` refuses a mismatch in the kernel.
    """
    root = str(checkout_root())
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", CHECKOUT_ENV)}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, saved["PYTHONPATH"]) if p)
    os.environ[CHECKOUT_ENV] = root
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_checkout() -> None:
    """Refuse to run a report's notebook with the ``vrlib`` of another checkout.

    Called by :class:`StudyOutputs`, i.e. at the top of every study notebook. Outside a report
    (``VRLIB_CHECKOUT`` unset, e.g. interactive JupyterLab) there is nothing to compare with.
    """
    expected = os.environ.get(CHECKOUT_ENV)
    if expected and Path(expected).resolve() != checkout_root():
        raise RuntimeError(
            f"this notebook kernel imported vrlib from {checkout_root()}, but the report is run "
            f"from the checkout {expected}; refusing to report another checkout's code"
        )


def reproduce(params_name: str = "default", out_root: str | Path = "reports") -> list[Path]:
    """Build the default world and expert if missing, then run every study at ``params_name``."""
    from vrlib.data.synthetic import ensure_world
    from vrlib.paths import world_dir
    from vrlib.pretrain import ensure_expert

    ensure_world(world_dir("default", 0), preset="default", seed=0)
    ensure_expert("default", 0)
    outs = []
    for study in study_names():
        path = params_path(study, params_name)
        if path.exists():
            print(f"[vrlib] {study}: {path}", flush=True)
            outs.append(run_study(study, path, out_root, readme=False))
    build_readme(Path(out_root))
    return outs


# ---------------------------------------------------------------------------------------------
# command line (called from vrlib.cli)


def _terminate_as_exit() -> None:
    """SIGTERM (a closed session, ``kill``) unwinds like Ctrl-C, so a run moves its folder to
    ``.NAME.failed/`` instead of leaving ``.NAME.running-<pid>/`` behind."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def report_from_cli(args: argparse.Namespace) -> int:
    _terminate_as_exit()
    try:
        out = run_study(args.study, args.params, args.out_root, readme=not args.no_readme)
    except (ParamsError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def reproduce_from_cli(args: argparse.Namespace) -> int:
    _terminate_as_exit()
    for out in reproduce(args.params_name, args.out_root):
        print(out)
    return 0
