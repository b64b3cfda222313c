"""The install files agree with each other, and the command line answers."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """Normalised distribution name of a requirement string ('open_clip_torch>=2' -> 'open-clip-torch')."""
    name = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, (
        f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    )
    assert any(r.startswith("-e .") for r in pip_section), (
        "environment.yml must install the package itself"
    )


def test_torch_pins_match_the_machine_wheels():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "vrlib", "--help"], capture_output=True, text=True, check=True
    )
    for cmd in ("synth", "pretrain", "report", "reproduce"):
        assert cmd in out.stdout


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert first_block.split() == ["make", "reproduce", "make", "test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_links_stay_inside_the_repository():
    """A clone has no ../shared: every path the README names exists in the checkout (issue 21)."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/design.md" in links and "docs/style.md" in links
    for link in links:
        if not link.startswith(("http://", "https://")):
            assert (ROOT / link).exists(), link


def test_make_test_provisions_chromium_and_ci_only_calls_it():
    """`make test` gets its Chromium like `make setup` gets .venv; .ci/run adds nothing."""
    make = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "test", "VENV=/nonexistent-venv"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    steps = make.stdout.splitlines()
    ensure = [i for i, s in enumerate(steps) if ".ci/ensure_chromium.sh" in s]
    pytest_run = [i for i, s in enumerate(steps) if "-m pytest" in s]
    assert ensure and pytest_run and ensure[0] < pytest_run[0]
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[-1] == "make test" and not any("apt-get" in line for line in ci)
