"""Study 02, the reading: what the tables say, in words computed from their numbers.

Why apart from ``temporal.study``: the reading is the longest piece of the study and only
reads rows (``summary_rows``, ``twin_rows``, ``paired_claims_table``); it never trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vrlib.studies.temporal.probes import probe_reading, text_gate
from vrlib.studies.temporal.study import CONTROL
from vrlib.studies.toolkit import (
    STEP0_CLAIM,
    best_setting,
    claims_reading,
    counts_sentence,
    listing,
)


def reading(
    summary: Sequence[dict[str, Any]],
    twins: Sequence[dict[str, Any]],
    claims: Sequence[dict[str, Any]],
    ours: Sequence[dict[str, Any]],
    paper: Sequence[dict[str, Any]],
    gate_passed: bool = True,
) -> str:
    """A plain reading of the results, every number and word computed from the tables.

    Args:
        summary: ``summary_rows`` (means and stds over seeds).
        twins: ``twin_rows`` (twin accuracy with bootstrap intervals).
        claims: ``paired_claims_table`` of ``CLAIMS`` (the paper's comparisons).
        ours: ``paired_claims_table`` of ``study_claims`` (order, projection, text side, twin
            batches).
        paper: the paper's rows (``vrlib.papers``).
        gate_passed: the text probe gate (``temporal.probes.text_gate``); False lists the twin
            results without reading them as an answer to "does order help?".
    """
    how = (
        "by a paired cluster bootstrap over test videos and seeds "
        "(95% interval of the difference above 0)"
    )
    parts = claims_reading(claims, "the paper's Table 1 comparisons", how)
    tw = {r["setting"]: r for r in twins}

    def acc(s: str) -> str:
        r = tw[s]
        return f"{r['reversal_acc']:.1f}% [{r['reversal_acc_lo']:.1f}, {r['reversal_acc_hi']:.1f}]"

    if "meanP" in tw:
        m = tw["meanP"]
        parts.append(
            f"Order, by the twin instrument (each temporal caption against its own video's frame "
            f"features forward and reversed; {m['reversal_videos']} test videos; 95% cluster-"
            f"bootstrap intervals over videos): meanP prefers the true order in {acc('meanP')} "
            f"(exactly 50% = blind to order). Against the {m['twin_pairs']} reversed twin files "
            f"(sampled and encoded on their own, a second figure): meanP "
            f"{m['twin_acc_temporal']:.1f}%."
        )
    order = [c for c in ours if c["comparison"].endswith("(reversal)") and c["claim"].startswith("order helps")]  # fmt: skip
    if order:
        held = [c for c in order if c["verdict"] == "holds"]
        rev = [c for c in order if c["verdict"] == "reversed"]
        question = "Does order help?" if gate_passed else "Twin results (not read, see the gate):"
        parts.append(
            f"{question} {len(held)} of {len(order)} order-aware heads prefer a caption's video "
            f"in true order to the same frames reversed more often than their order-blind control "
            f"does (paired cluster bootstrap over videos: {listing([_short(c) for c in held], ', ')})"
            + (f"; {len(rev)} do so less often ({listing([_short(c) for c in rev], ', ')})" if rev else "")
            + f"; in all: {counts_sentence(order)}."
        )  # fmt: skip
        pairs = [c["comparison"].split(" vs ")[0] for c in order]
        parts.append(
            "Heads vs controls: "
            + "; ".join(f"{m} {acc(m)} vs {acc(m + CONTROL)}" for m in pairs if m in tw and m + CONTROL in tw)
            + "."
        )  # fmt: skip
    for words, key in (
        ("Training a projection (order-blind controls vs meanP, T2V R@1)", "beats meanP"),
        ("The learning text side (vs frozen text)", "the learning text side helps"),
        ("Twin batches (order, by the twin instrument)", "twin batches help"),
        ("Step 0: trained heads vs the zero-shot expert (T2V R@1)", STEP0_CLAIM),
    ):
        group = [c for c in ours if key in c["claim"]]
        if group:
            parts.append(
                f"{words}: "
                + "; ".join(f"{c['comparison']} {c['ours diff']:+.1f} [{c['CI lo']:+.1f}, {c['CI hi']:+.1f}] {c['verdict']}" for c in group)
                + "."
            )  # fmt: skip
    parts += _sweep_reading(summary, paper)
    return " ".join(parts)


def _short(claim: dict[str, Any]) -> str:
    return f"{claim['comparison'].split(' vs ')[0]} {claim['ours diff']:+.1f}"


def _sweep_reading(summary: Sequence[dict[str, Any]], paper: Sequence[dict[str, Any]]) -> list[str]:
    """Table 2: the best K and w by T2V R@1, ours beside the paper's, with the spread and noise."""
    parts = []
    paper_best = {
        prefix: max(
            (r for r in paper if r["setting"].startswith(prefix) and r["direction"] == "t2v"),
            key=lambda r: r["R@1"],
            default={"setting": None},
        )["setting"]
        for prefix in ("tab-k", "tab-w")
    }
    for prefix, what in (("tab-k", "K"), ("tab-w", "w")):
        ours = best_setting(summary, prefix)
        if ours:
            sweep = [
                r for r in summary if r["setting"].startswith(prefix) and r["direction"] == "t2v"
            ]
            spread = max(r["R@1"] for r in sweep) - min(r["R@1"] for r in sweep)
            noise = max(r["R@1_std"] for r in sweep)
            parts.append(
                f"Best {what} by T2V R@1: ours {ours.removeprefix(prefix)}, the paper's "
                f"{(paper_best[prefix] or '?').removeprefix(prefix)} (our means span "
                f"{spread:.1f} points across {what}; largest seed std {noise:.1f})."
            )
    return parts


def full_reading(
    summary: Sequence[dict[str, Any]],
    twins: Sequence[dict[str, Any]],
    claims: Sequence[dict[str, Any]],
    ours: Sequence[dict[str, Any]],
    paper: Sequence[dict[str, Any]],
    probes: Sequence[dict[str, Any]],
    fit_twins: Sequence[dict[str, Any]],
    meanp_gap: float,
) -> str:
    """The notebook's whole reading: ``reading``, the probes' (``probe_reading``) and why
    meanP's twin accuracy is or is not exactly 50% (``meanp_gap``: ``twin_embedding_gap``)."""
    passed, gate = text_gate(list(probes))
    text = (gate + " " if gate else "") + reading(summary, twins, claims, ours, paper, passed)
    text += " " + probe_reading(list(probes), list(fit_twins))
    meanp = next((t for t in twins if t["setting"] == "meanP"), None)
    if meanp is not None:
        text += (
            f" meanP's twin accuracy is {meanp['twin_acc']:.2f}% on all captions of twinned videos: "
            + ("exactly 50%, because a video and its reversed twin give identical mean features."
               if meanp_gap == 0.0 else
               f"not exactly 50%, because the mean features of a video and its twin differ slightly "
               f"(max distance {meanp_gap:.1e}: sampled positions are not exact mirrors and each file is "
               f"encoded lossily on its own).")
        )  # fmt: skip
    return text


def reading_from_metrics(doc: dict[str, Any]) -> str:
    """The reading again, from a report's metrics.json alone (what the notebook wrote)."""
    from vrlib.papers import paper_rows

    return full_reading(doc["rows"], doc["twin_analysis"], doc["claims"], doc["order_claims"],
                        paper_rows("temporal_ablation"), doc["text_direction_probe"],
                        doc["train_split_twin_accuracy"], doc["meanP_twin_embedding_gap"])  # fmt: skip
