"""Study 04's claims and reading: each claim decided by a paired cluster bootstrap over test
videos (twin pairs for twin accuracy) and seeds, with declared margins; every trained Table 4
setting against step 0.

Why apart from ``curriculum.runs``: these only read runs and rows (``RunResult``, ``summary_rows``,
``twin_rows``); they never train.
"""

from __future__ import annotations

import math

import numpy as np

from vrlib.studies.curriculum.runs import TABLE4, UNTRAINED, CurriculumParams, RunResult
from vrlib.studies.curriculum.swaps import WordSwaps, word_kind
from vrlib.studies.toolkit import (
    STEP0_CLAIM,
    against_step0,
    counts_sentence,
    decide,
    paired_cluster_bootstrap,
)
from vrlib.train.clips import ClipSet


def per_query(runs: list[RunResult], setting: str, what: str = "hit1") -> np.ndarray:
    """Per seed and test query, ``(seeds, n)``: ``hit1`` (100 x [rank = 1]), ``hit10``, ``twin``
    (100 x the twin score, per caption of a twinned video) or ``swap`` (100 x the weighted swap
    score, per word swap)."""
    picked = [r for r in runs if r.setting == setting]
    if not picked:
        raise KeyError(f"no runs of setting {setting!r}")
    if what in ("twin", "swap"):
        return (
            np.stack([r.twin_scores if what == "twin" else r.swap_scores for r in picked]) * 100.0
        )
    k = {"hit1": 1, "hit10": 10}[what]
    return np.stack([(r.t2v_ranks <= k) * 100.0 for r in picked])


def query_clusters(test: ClipSet, what: str = "hit1", swaps: WordSwaps | None = None) -> np.ndarray:
    """The cluster of each query of ``per_query``: its video, or for ``twin`` its twin pair
    (the smaller video index of the pair), so the bootstrap resamples videos, not captions."""
    c2v = np.asarray(test.caption_to_video)
    if what == "swap":
        return c2v[swaps.rows]
    if what != "twin":
        return c2v
    twin = np.asarray(test.twin_of)
    rows = np.flatnonzero(twin[c2v] >= 0)  # the captions _twin_scores keeps, in order
    return np.minimum(c2v[rows], twin[c2v[rows]])


_CLAIM_KIND = {"greater": "greater", "reaches": "not_worse", "equal": "equivalent"}


def _verdict(test: dict, want: str, params: CurriculumParams, effect: float | None = None) -> str:
    """``want``: ``"greater"`` (lower bound > 0), ``"reaches"`` (non-inferiority: lower bound >
    -noninferiority_margin), ``"equal"`` (two one-sided tests inside +-equivalence_margin)."""
    margin = {"reaches": params.noninferiority_margin, "equal": params.equivalence_margin}
    return decide(test, _CLAIM_KIND[want], margin=margin.get(want, 0.0), effect=effect)


def compute_of(summary: list[dict], setting: str) -> float:
    row = next((r for r in summary if r["setting"] == setting and r["direction"] == "t2v"), None)
    return math.nan if row is None else row["GFLOPs"]


def claims(runs: list[RunResult], summary: list[dict], params: CurriculumParams,
           test: ClipSet, paper: list[dict] = (), held_out: np.ndarray | None = None,
           unseen_word: np.ndarray | None = None, swaps: WordSwaps | None = None) -> list[dict]:  # fmt: skip
    """The paper's claims tested on our numbers (paired cluster bootstrap over test videos and
    seeds), then every trained Table 4 setting against step 0 (``untrained``).

    Args:
        test: the test clips (their videos and twins are the bootstrap's clusters).
        paper: the paper's rows (``vrlib.papers``): its T2V R@1 difference is the effect an
            undecided greater-claim is measured against (``underpowered`` below the MDD).
        held_out: per test video, whether it shows a concept held out of the training videos
            (``Prepared.held_out``): joint against videos-only is tested again on those videos,
            where the paper's mechanism (images carry what the videos lack) must show if anywhere.
        unseen_word: per test video, whether it shows a shape or colour the model starts without
            or the training videos lack (``Prepared.unseen_word``): the same comparison on those
            videos.
        swaps: the word swaps of those videos' captions (``Prepared.swaps``): joint against
            videos-only on the word-swap instrument, the mechanism itself.
    """
    have = {r.setting for r in runs}
    theirs = {r["setting"]: r["R@1"] for r in paper if r.get("direction", "t2v") == "t2v"}
    held_words = ", ".join(params.held_out_words())
    kind = word_kind(params.held_out_words())  # "shape", "colour" (or "word", both kinds)
    out = []

    def add(claim: str, a: str, b: str, want: str, what: str = "hit1",
            max_ratio: float | None = None, queries: np.ndarray | None = None, where: str = ""):  # fmt: skip
        if a not in have or b not in have:
            return
        qa, qb = per_query(runs, a, what), per_query(runs, b, what)
        groups = query_clusters(test, what, swaps)
        if queries is not None:  # a subset of the queries (T2V only)
            qa, qb, groups = qa[:, queries], qb[:, queries], groups[queries]
        if qa.shape[1] == 0:  # e.g. no reversed twins in the test split
            return
        ci = paired_cluster_bootstrap(qa, qb, groups, seed=params.seed, n_boot=params.n_boot)
        effect = theirs.get(a, math.nan) - theirs.get(b, math.nan) if what == "hit1" else None
        verdict = _verdict(ci, want, params, effect)
        spent = compute_of(summary, b)
        ratio = compute_of(summary, a) / spent if spent > 0 else math.inf  # step 0 spent none
        if max_ratio is not None and not ratio <= max_ratio and verdict == "holds":
            verdict = f"does not hold (compute ratio {ratio:.2f} > {max_ratio})"
        metric = {"twin": "twin acc", "swap": f"{kind}-swap acc"}.get(what, "T2V R@1") + where
        margin = {"reaches": params.noninferiority_margin, "equal": params.equivalence_margin}
        out.append({"claim": claim, "comparison": f"{a} - {b} ({metric})", "diff": ci["value"],
                    "ci_low": ci["lo"], "ci_high": ci["hi"], "margin": margin.get(want, 0.0),
                    "mdd": ci["mdd"], "n_queries": ci["n"], "n_videos": ci["n_clusters"],
                    "compute_ratio": ratio, "verdict": verdict,
                    "paper_diff": math.nan if effect is None else effect})  # fmt: skip

    # The paper's curriculum saves time because its later stages are short fine-tunes (PTT 36 h
    # against 98 h); here every schedule has the same steps and the stages are compute-matched,
    # so the saving is what the cheaper early stages spend less, and the claim tested is
    # non-inferiority at less compute.
    add("the 1=>4=>8 curriculum reaches fixed-8 accuracy at less compute",
        "frames-1=>4=>8", "frames-8", "reaches", max_ratio=1.0)  # fmt: skip
    add("the 1=>4 curriculum reaches fixed-4 accuracy at less compute",
        "frames-1=>4", "frames-4", "reaches", max_ratio=1.0)  # fmt: skip
    add("4 frames beat 1 frame", "frames-4", "frames-1", "greater")
    add("joint training beats images only", "joint", "images-only", "greater")
    add("joint training beats videos only", "joint", "videos-only", "greater")
    if held_out is not None and held_out.any():
        queries = np.asarray(held_out)[np.asarray(test.caption_to_video)]
        add("joint training beats videos only on videos with concepts held out of training videos",
            "joint", "videos-only", "greater", queries=queries, where=", held-out concepts")  # fmt: skip
    lacking = {(True, True): "the expert and the training videos never showed",
               (True, False): "the expert never saw (the videos show it)",
               (False, True): "the training videos never showed (the expert saw it)"}.get(
        (bool(params.encoder.expert_without_words), bool(params.videos_without_words)), "")  # fmt: skip
    if unseen_word is not None and unseen_word.any():
        queries = np.asarray(unseen_word)[np.asarray(test.caption_to_video)]
        add(f"joint training beats videos only on videos of a {kind} {lacking}",
            "joint", "videos-only", "greater", queries=queries, where=f", videos of {held_words}")  # fmt: skip
    if swaps is not None and len(swaps):
        add(f"joint training ties a {kind}'s word to the {kind} better than videos only (a "
            f"{kind} {lacking})", "joint", "videos-only", "greater", what="swap", where=f", {held_words}")  # fmt: skip
        # where the mechanism's signal is: can either source teach the words at all?
        for source in ("images", "videos"):
            add(f"training on the {source} {WORDS_TAUGHT} {kind}s' words (against the untrained "
                f"model)", f"{source}-only", UNTRAINED, "greater", what="swap", where=f", {held_words}")  # fmt: skip
    ratio = table_ratio(runs, [f"expand-{x}" for x in params.expansions])
    for a, b in (("zeros", "nearest"), ("zeros", "bilinear"), ("nearest", "bilinear")):
        before = len(out)
        add(EXPANSION_CLAIM, f"expand-{a}", f"expand-{b}", "equal")
        if len(out) > before:
            _judge_table(out[-1], ratio, params.negligible_table_ratio)
    add("the modified block beats the original Timesformer block", "block-frozen",
        "block-timesformer", "greater")  # fmt: skip
    backwards = params.train.backwards_share  # the order-free-captions control
    order_free = f", captions order-free ({backwards:.0%} of clips played backwards)"
    add("an 8-frame model tells reversed twins apart better than a 1-frame model"
        + (order_free if backwards else ""), "frames-8", "frames-1", "greater", what="twin")  # fmt: skip
    for name, step0, _, words in against_step0(TABLE4, UNTRAINED):
        add(words, name, step0, "greater")
    return out


EXPANSION_CLAIM = "temporal expansions are within noise"


def table_ratio(runs: list[RunResult], names: list[str]) -> float:
    """Mean over the runs of ``names`` of the learned temporal table's size when it was last
    expanded, as a share of the spatial positions' (RMS row norms); nan if none expanded."""
    ratios = [r.expansions[-1]["table_rms"] / r.positional_rms for r in runs
              if r.setting in names and r.expansions and r.positional_rms > 0]  # fmt: skip
    return float(np.mean(ratios)) if ratios else math.nan


def _judge_table(row: dict, ratio: float, negligible: float) -> None:
    """An expansion comparison reads nothing when the table it expands is negligible: every
    method then writes (nearly) zeros, whatever the method is worth."""
    row["table_ratio"] = ratio
    if math.isfinite(ratio) and ratio < negligible:
        row["verdict"] = (
            f"uninformative (learned temporal table {ratio:.3f} of the positions' size)"
        )


def reading(summary: list[dict], claim_rows: list[dict], twins: list[dict],
            swaps: list[dict] = ()) -> str:  # fmt: skip
    """A plain reading computed from the tables (``summary_rows``, ``claims``, ``twin_rows``,
    ``swap_rows``)."""
    t2v = {r["setting"]: r for r in summary if r["direction"] == "t2v"}
    paper = [c for c in claim_rows if STEP0_CLAIM not in c["claim"]]
    step0 = [c for c in claim_rows if STEP0_CLAIM in c["claim"]]
    held = [c for c in paper if c["verdict"] == "holds"]
    parts = [f"{len(held)} of {len(paper)} comparisons behind the paper's claims hold here "
             f"({counts_sentence(paper)}; paired bootstrap over test videos and seeds, 95% "
             f"intervals).",
             *(_claim_words(c) for c in paper)]  # fmt: skip
    parts += _words_taught(paper)
    if step0 and UNTRAINED in t2v:
        held0 = [c["comparison"].split(" - ")[0] for c in step0 if c["verdict"] == "holds"]
        parts.append(f"Step 0 (untrained, T2V R@1 {t2v[UNTRAINED]['R@1']:.1f}): "
                     f"{len(held0)} of {len(step0)} Table 4 settings beat it "
                     f"({', '.join(held0) or 'none'}; {counts_sentence(step0)}).")  # fmt: skip
    if "frames-8" in t2v and "frames-1=>4=>8" in t2v:
        a, b = t2v["frames-1=>4=>8"], t2v["frames-8"]
        parts.append(f"Curriculum 1=>4=>8: R@1 {a['R@1']:.1f} with {a['GFLOPs']:.0f} GFLOPs; "
                     f"fixed 8 frames: R@1 {b['R@1']:.1f} with {b['GFLOPs']:.0f} GFLOPs.")  # fmt: skip
    tw = {r["setting"]: r for r in twins}
    if "frames-1" in tw and "frames-8" in tw:
        parts.append(f"Reversed twins: own video above its twin for {tw['frames-1']['twin_acc']:.1f}% "
                     f"of captions with 1 frame and {tw['frames-8']['twin_acc']:.1f}% with 8 "
                     f"(50% = blind to order).")  # fmt: skip
    if swaps:
        kind = word_kind(swaps[0]["words"].split(", "))
        accs = "; ".join(f"{r['setting']} {r['swap_acc']:.1f}%" for r in swaps)
        parts.append(f"{kind.capitalize()} swaps ({swaps[0]['n']} swapped captions of "
                     f"{swaps[0]['words']}): own caption above the same caption with its {kind} "
                     f"swapped for another held-out one: {accs} (balanced over {kind} pairs; "
                     f"50% = blind to the {kind}s).")  # fmt: skip
    return " ".join(parts)


WORDS_TAUGHT = "teaches the held-out"  # + " shapes' words" or " colours' words"


def _words_taught(claim_rows: list[dict]) -> list[str]:
    """Where Table 2's mechanism stands: a source that cannot teach the held-out shapes (or
    colours) at all (its swap accuracy not above the untrained model's) has nothing for joint
    training to carry, and T2V R@1 on those videos then compares something other than them."""
    rows = [c for c in claim_rows if WORDS_TAUGHT in c["claim"]]
    if not rows:
        return []
    kind = rows[0]["comparison"].split("(")[1].split("-swap acc")[0]  # the claims' own metric
    each = "; ".join(
        f"{c['comparison'].split(' - ')[0]} {c['diff']:+.1f} {c['verdict']}" for c in rows
    )
    taught = [c["comparison"].split(" - ")[0] for c in rows if c["verdict"] == "holds"]
    if taught:
        return [f"{kind.capitalize()}s taught by {', '.join(taught)} ({kind}-swap accuracy "
                f"against the untrained model: {each})."]  # fmt: skip
    return [f"No source teaches the held-out {kind}s' words in this training ({kind}-swap "
            f"accuracy against the untrained model: {each}), so Table 2's mechanism has nothing "
            f"to carry here: T2V R@1 on those videos compares something other than the "
            f"{kind}s."]  # fmt: skip


def _claim_words(c: dict) -> str:
    bounds = f"[{c['ci_low']:+.1f}, {c['ci_high']:+.1f}]"
    margin = f", margin {c['margin']:g}" if c["margin"] else ""
    if math.isfinite(c.get("table_ratio", math.nan)):
        margin += f", temporal table {c['table_ratio']:.3f} of the positions' size"
    compute = f", compute x{c['compute_ratio']:.2f}" if math.isfinite(c["compute_ratio"]) else ""
    paper = c.get("paper_diff", math.nan)
    smaller = ""
    if c["verdict"] in ("underpowered", "within noise") and paper > 0 and c["ci_high"] < paper:
        smaller = f"; the paper's {paper:+.1f} lies above the interval: the gain is smaller here"
    return (f"{c['claim']}: {c['verdict']} ({c['comparison']} {c['diff']:+.1f} {bounds}{margin}, "
            f"MDD {c['mdd']:.1f}{compute}{smaller}).")  # fmt: skip


def reading_from_metrics(doc: dict) -> str:
    """The reading again, from a report's metrics.json alone (what the notebook wrote)."""
    return reading(doc["rows"], doc["claims"], doc["twin_analysis"], doc.get("swap_analysis", []))
