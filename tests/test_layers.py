"""The import layering of DESIGN.md holds (import-linter's contract in pyproject.toml).

Why a test: ``make test`` then fails, with the linter's own message, when a change imports
upward (e.g. a study importing ``vrlib.report``); the second test shows that the contract does
catch such an import, on a throwaway package laid out like ``vrlib``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` on the contract in ``cwd/pyproject.toml``, importing from ``pythonpath``."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_import_layers_hold():
    done = lint_imports(ROOT, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = {
        part.strip().strip("()")
        for c in contracts["contracts"]
        for layer in c.get("layers", [])
        for part in layer.split("|")
    }
    pkg = tmp_path / "vrlib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in names | {"vrlib.metrics"}:
        (pkg / f"{name.removeprefix('vrlib.')}.py").write_text("")
    (pkg / "data.py").write_text("import vrlib.report\n")  # the bottom importing the top
    (pkg / "metrics.py").write_text("from vrlib import io\n")  # metrics must stand alone
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    done = lint_imports(tmp_path, tmp_path)
    assert done.returncode != 0, done.stdout
    assert "vrlib.data -> vrlib.report" in done.stdout
    assert "vrlib.metrics -> vrlib.io" in done.stdout
