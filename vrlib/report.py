"""Run a study notebook with papermill and write its outputs in one shape every study shares.

Why: results must be comparable by code. Each run of ``notebooks/NN_STUDY.ipynb`` at
``parameters/STUDY/NAME.yaml`` goes to ``reports/STUDY/NAME/``: the executed notebook, one
``metrics.json`` (study, params, protocol, versions, seed, inputs, wall time, rows), tables as CSV and
Markdown, figures as PNG. ``reports/README.md`` is then rebuilt from every metrics.json found,
beside the papers' figures (``vrlib.papers``). Parameters are validated before the notebook
starts, so a bad file fails in a second with the key named.

Length: a little over 400 lines: the runner (fresh folder, kernel checks, swap on success) and
the README roll-up both read and write the same metrics.json shape; the roll-up is the next seam
to split along if it grows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from vrlib.io import atomic_write_text, read_json, replace_dir, write_json
from vrlib.studies import get_study, notebooks_dir, parameters_dir, study_names
from vrlib.studies.common import study_inputs


class ParamsError(ValueError):
    """A parameter file that is missing, not YAML, or has a bad or unknown key."""


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
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    import papermill

    spec = get_study(study)
    path = Path(params) if params is not None else params_path(study)
    check_params(study, path)  # fail fast, naming the key
    out_dir = Path(out_root).resolve() / study / path.stem
    work = out_dir.with_name(f".{out_dir.name}.running-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    nb_in = notebooks_dir() / spec.notebook
    started = time.time()
    try:
        with kernel_environment():
            papermill.execute_notebook(
                str(nb_in),
                str(work / spec.notebook),
                parameters={"params_path": str(path.resolve()), "out_dir": str(work)},
                cwd=str(notebooks_dir()),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
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
# reports/README.md


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _load_runs(out_root: Path) -> dict[str, dict[str, dict]]:
    """``{study: {run_name: metrics_doc}}`` for every metrics.json under ``out_root``."""
    runs: dict[str, dict[str, dict]] = {}
    for path in sorted(out_root.glob("*/*/metrics.json")):
        if path.parent.name in ("scratch", "smoke") or path.parent.name.startswith("."):
            continue
        doc = json.loads(path.read_text())
        runs.setdefault(doc["study"], {})[path.parent.name] = doc
    return runs


def _study_table(study: str, runs: dict[str, dict]) -> str:
    """Markdown: paper's figure, ours on the default world, ours on real data (runs not named default).

    A paper figure computed under another metric protocol than ours (``vrlib.papers``) carries a
    footnote saying how, so no row silently compares unlike with unlike.
    """
    from vrlib.papers import PAPER_NOTES, paper_rows, protocol_differences

    ours = runs.get("default", {}).get("rows", [])
    our_protocol = runs.get("default", {}).get("protocol") or {}
    real = {name: doc for name, doc in runs.items() if name != "default"}
    paper = {(r["setting"], r["direction"], r["split"]): r for r in paper_rows(study)}
    header = "| setting | split | dir | paper R@1 | paper R@5 | paper MdR | ours R@1 | ours R@5 | ours MdR |"
    cols = "|---|---|---|---|---|---|---|---|---|"
    for name in real:
        header += f" {name} R@1 |"
        cols += "---|"
    lines, footnotes = [header, cols], []
    for r in ours:
        p = _match_paper(paper, r)
        cells = [_setting_label(r), r["split"], r["direction"]]
        cells += [_fmt(p.get(k)) if p else "" for k in ("R@1", "R@5", "MdR")]
        differ = protocol_differences(p, our_protocol) if p else []
        if differ:
            footnotes.append("; ".join(differ))
            cells[3] += f" [{len(footnotes)}]"
        cells += [_fmt(r.get(k)) for k in ("R@1", "R@5", "MdR")]
        for doc in real.values():
            match = [
                x
                for x in doc["rows"]
                if x["setting"] == r["setting"]
                and x["direction"] == r["direction"]
                and all(x.get(k) == r.get(k) for k in _QUALIFIERS)
            ]
            cells.append(_fmt(match[0]["R@1"]) if match else "")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"[{i}] not like with like, metric protocol: {d}" for i, d in enumerate(footnotes, 1)]
    notes += [f"Note: {n}." for n in PAPER_NOTES.get(study, [])]
    return "\n".join(lines) + "".join(f"\n\n{n}" for n in notes)


# Fields beside ``setting`` that some studies need to tell rows apart (study 03: the same rule
# over different captioners and K).
_QUALIFIERS = ("captioners", "k")


def _setting_label(row: dict) -> str:
    """``setting``, with its qualifiers when the row has them (``rand_top_k [C+B, k=2]``)."""
    extra = [f"{k}={row[k]}" if k == "k" else str(row[k]) for k in _QUALIFIERS if k in row]
    return f"{row['setting']} [{', '.join(extra)}]" if extra else row["setting"]


def _match_paper(paper: dict, row: dict) -> dict | None:
    """The paper row for ``row``: same setting, direction and split (a paper row on another split is
    a different protocol and is never shown as if it were comparable)."""
    return paper.get((row["setting"], row["direction"], row["split"]))


# Measured for issue 10 (emulating another CPU with ATEN_CPU_CAPABILITY=avx2 vs avx512 and
# MKL_CBWR=COMPATIBLE; thread count and encoder batch size 64 vs 32 changed nothing).
CROSS_MACHINE_NOTE = (
    "Across machines: each run's `metrics.json` records its inputs (`inputs.data_sha256` of the "
    "world's annotation files, `inputs.encoder_fingerprint` of the weights); compare those first. "
    "With the same inputs, frame and caption features computed on another CPU differ by up to "
    "2e-7 (other SIMD kernels); k-means decides ties by index and is unaffected. Rows that train "
    "a head (study 02) amplify that rounding through training and are not bitwise reproducible "
    "across CPU models: a reproduction on an AMD EPYC differed by up to 1.7 R@1 there, so read "
    "their differences below that as noise.\n"
)


def build_readme(out_root: Path) -> Path:
    """Rebuild ``reports/README.md`` from every metrics.json under ``out_root``."""
    runs = _load_runs(out_root)
    parts = [
        "# Reports\n",
        "Generated by `python -m vrlib report` / `make reproduce` from the `metrics.json` of each run; "
        "do not edit by hand. *paper*: the paper's figure (on MSR-VTT with CLIP); *ours*: this "
        "workbench on the embedded default world (`default.yaml`); further columns: runs on real data "
        "(empty until someone runs them). Metrics: R@K in percent, MdR = median rank.\n",
        CROSS_MACHINE_NOTE,
    ]
    for study in study_names():
        spec = get_study(study)
        parts.append(f"## {spec.title} (`{study}`)\n")
        if study not in runs:
            parts.append("_not run yet_\n")
            continue
        doc = runs[study].get("default")
        if doc:
            parts.append(
                f"Run: [`{study}/default/`]({study}/default/) — seed {doc.get('seed')}, "
                f"{doc.get('wall_time_s')} s, torch {doc['versions'].get('torch')}.\n"
            )
        if any(d.get("rows") for d in runs[study].values()):
            parts.append(_study_table(study, runs[study]) + "\n")
        notes = (doc or {}).get("reading")
        if notes:
            parts.append(f"Reading: {notes}\n")
    bench = out_root / "benchmarks.md"
    if bench.exists():
        parts.append("## Benchmarks\n\nSee [benchmarks.md](benchmarks.md).\n")
    return atomic_write_text(out_root / "README.md", "\n".join(parts))


# ---------------------------------------------------------------------------------------------
# command line (called from vrlib.cli)


def report_from_cli(args: argparse.Namespace) -> int:
    try:
        out = run_study(args.study, args.params, args.out_root, readme=not args.no_readme)
    except (ParamsError, KeyError) as e:
        print(f"error: {e}")
        return 2
    print(out)
    return 0


def reproduce_from_cli(args: argparse.Namespace) -> int:
    for out in reproduce(args.params_name, args.out_root):
        print(out)
    return 0
