"""``reports/README.md``: every run's metrics.json rolled up, the papers' figures beside ours.

Why apart from ``vrlib.report`` (which re-exports :func:`build_readme`): the runner writes a
report, this reads all of them; both share only the metrics.json shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vrlib.io import atomic_write_text
from vrlib.studies import get_study, study_names


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
# over different captioners and K, trained end to end or on cached features).
_QUALIFIERS = ("captioners", "k", "protocol")


def _setting_label(row: dict) -> str:
    """``setting``, with its qualifiers when the row has them (``rand_top_k [C+B, k=2, cached]``)."""
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
    "their differences below that as noise. Experts pretrained on another CPU are other weights "
    "(another `encoder_fingerprint`): study 04 regenerated on an AMD EPYC with experts trained "
    "there moved its T2V R@1 rows by up to 0.8 and V2T by up to 4.2, and turned its twin claim "
    "(8 frames against 1) from holds, +3.7 [+0.9, +6.2], into within noise, +2.1 [-2.1, +6.7]: "
    "a verdict near its bound does not survive a retrained expert.\n"
)


def build_readme(out_root: Path) -> Path:
    """Rebuild ``reports/README.md`` from every metrics.json under ``out_root``, and with it
    ``leaderboard.md`` from the default runs' result cards (:func:`build_study_leaderboard`)."""
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
    if build_study_leaderboard(out_root) is not None:
        parts.append(
            "## Leaderboard\n\nEvery head the default runs trained, and the untrained expert, as "
            "result cards under one protocol preset: [leaderboard.md](leaderboard.md).\n"
        )
    bench = out_root / "benchmarks.md"
    if bench.exists():
        parts.append("## Benchmarks\n\nSee [benchmarks.md](benchmarks.md).\n")
    return atomic_write_text(out_root / "README.md", "\n".join(parts))


def build_study_leaderboard(out_root: Path) -> Path | None:
    """``leaderboard.md`` from the result cards of the default runs (``STUDY/default/cards/``);
    None where no default run wrote cards."""
    from vrlib.evaluation.leaderboard import write_leaderboard

    folders = sorted(out_root.glob("*/default/cards"))
    if not folders:
        return None
    shown = " ".join(f"reports/{f.relative_to(out_root).as_posix()}" for f in folders)
    return write_leaderboard(folders, out_root / "leaderboard.md", shown_as=shown)
