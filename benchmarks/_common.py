"""Shared helpers for benchmark scripts.

Why: every benchmark records its numbers in one file, ``reports/benchmarks.md``, each in its own
section delimited by markers, so scripts can be rerun one at a time without clobbering the others.
Numbers are produced by the scripts, never typed in.
"""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

import torch

from vrlib.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nProduced by the scripts in `benchmarks/` (`make bench`); each section says which "
    "script and command wrote it. Speed is reported as ratios measured in one run.\n"
)


def machine_line() -> str:
    """One line describing where the numbers were measured."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {dev}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def write_section(name: str, markdown: str, report: Path = REPORT) -> Path:
    """Replace (or append) the section ``name`` of ``reports/benchmarks.md`` with ``markdown``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = report.read_text() if report.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    return atomic_write_text(report, text)
