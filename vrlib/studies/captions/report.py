"""Study 03, what the report shows of the runs: metrics rows, Figure 2's frames, captioner
quality, the claims over test videos and seeds (``query_bootstrap``) and the reading.

Apart from ``captions.runs`` because nothing here trains: it reads finished runs, the labels
(``TrainData.tables``), or the captioners and the world's held-out images.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from vrlib.studies.captions.claims import keyed
from vrlib.studies.captions.data import TrainData
from vrlib.studies.captions.runs import RunResult
from vrlib.studies.captions.study import (
    CACHED,
    END_TO_END,
    GT_CAPTIONS,
    GT_DESCRIBER,
    UPPER_BOUNDS,
    ZERO_SHOT,
    CaptionSelectionParams,
    RunSpec,
)
from vrlib.studies.toolkit import (
    METRIC_KEYS,
    aggregate_seeds,
    claims_reading,
    counts_sentence,
    listing,
    relation,
    rows_from_metrics,
)


def seed_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """metrics.json rows: ``setting`` = rule, with ``captioners``, ``k``, ``protocol``, ``seed``."""
    rows = []
    for run in runs:
        more = {"captioners": run.spec.label, "k": run.spec.k, "protocol": run.spec.protocol,
                "seed": run.seed}  # fmt: skip
        rows += rows_from_metrics(run.spec.rule, split, run.test, **more)
    return rows


def summary_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """Mean and std over seeds per (rule, captioners, k, protocol, split, direction)."""
    keys = ("setting", "captioners", "k", "protocol", "split", "direction")
    metrics = [m for m in METRIC_KEYS if m != "n"]
    return aggregate_seeds(seed_rows(runs, split), keys=keys, metrics=metrics)


def figure_videos(data: TrainData, n: int, params: CaptionSelectionParams) -> list[dict[str, Any]]:
    """The first ``n`` training videos' captioned frames, captions, CLIPScores and which captions
    ``rand_top_k`` (K = ``combine_k``) keeps, for the Figure 2 analogue."""
    from vrlib.captions import select, stack
    from vrlib.data.video import read_frames

    labels = list(data.tables)
    sel = select(stack([data.tables[x] for x in labels]), "rand_top_k", params.combine_k)
    m = params.frames_per_video
    out = []
    for v, item in enumerate(data.dataset.videos[:n]):
        first = data.tables[labels[0]]
        frames = read_frames(
            str(item.path), first.frame_indices[v], size=params.caption_size or 96, resize="square"
        )  # (M, S, S, 3)
        chosen = {int(i) for i in sel.indices[v]}
        out.append(
            {
                "video_id": item.video_id,
                "frames": frames,  # (M, S, S, 3) uint8
                "captions": {x: data.tables[x].captions[v] for x in labels},
                "scores": {x: data.tables[x].scores[v] for x in labels},
                "selected": {
                    x: [i for i in range(m) if j * m + i in chosen] for j, x in enumerate(labels)
                },
            }
        )
    return out


def caption_quality(params: CaptionSelectionParams, captioners: dict[str, Any], limit: int):
    """Each captioner's quality on ``limit`` of the world's held-out still images and on frames
    of ``limit // 3`` test videos, 3 frames each (``vrlib.captions.quality.evaluate_captioner``
    and ``evaluate_captioner_on_frames``): the frames carry the image->video gap the stills do
    not, and they are what the captioners label here. Empty on real data, which has no record to
    check, or with limit 0."""
    from vrlib.captions.quality import evaluate_captioner, evaluate_captioner_on_frames

    if params.data.root is not None or limit == 0:
        return []
    world = params.data.resolve_root()
    rows = []
    for label, c in captioners.items():
        stills = evaluate_captioner(c, world, "test", limit=limit)
        frames = evaluate_captioner_on_frames(
            c, world, "test", per_video=3, limit=max(1, limit // 3)
        )
        frames.pop("frames_per_video")
        for where, q in (("held-out stills", stills), ("test-video frames", frames)):
            rows.append({"captioner": f"{label} ({c.name})", "images": where, **q})
    return rows


def reading(
    summary: Sequence[dict[str, Any]],
    claims: Sequence[dict[str, Any]],
    boot: Sequence[dict[str, Any]],
    quality: Sequence[dict[str, Any]],
    curves: Sequence[dict[str, Any]] = (),
    step0: Sequence[dict[str, Any]] = (),
    coverage: Sequence[dict[str, Any]] = (),
    split: Sequence[dict[str, Any]] = (),
    lr_choice: Sequence[dict[str, Any]] = (),
) -> str:
    """A plain reading, every number computed from the tables (rows keyed by run key), the
    per-epoch test curves (``captions.runs.training_curves`` rows), ``step0``
    (``query_bootstrap`` of ``toolkit.against_step0``: every trained run against zero-shot),
    ``coverage`` (:func:`shot_coverage`) and ``split`` (:func:`by_shots`)."""
    parts = end_to_end_words(boot, step0, lr_choice)
    top = next((b["comparison"].split(" vs ")[0] for b in step0
                if b["comparison"].split(" vs ")[0].endswith(" e2e")
                and not b["comparison"].startswith("upper bound")), None)  # fmt: skip
    parts += signal_words(step0, top)
    parts += lr_words(lr_choice, CACHED, "Cached features (the cheap ablation)")
    parts += claims_reading(
        claims, "the paper's comparisons", "by more than 2 standard errors over seeds"
    )
    held = [b["comparison"] for b in boot if b["verdict"] == "holds"]
    over = boot[0]["resampled"] if boot else "videos and seeds"
    parts.append(
        f"Over test {over} (paired cluster bootstrap of T2V R@1, 95%), {len(held)} of "
        f"{len(boot)} differences are above 0 ({listing(held)}); {counts_sentence(boot)}."
    )
    r1 = {r["setting"]: r["R@1"] for r in summary if r["direction"] == "t2v"}
    zs = r1.get(RunSpec(ZERO_SHOT, 0, ()).key)
    for protocol, ub in itertools.product((END_TO_END, CACHED), UPPER_BOUNDS):
        key = RunSpec(ub, 0, (), protocol).key
        if key in r1 and zs is not None:
            same = [s for s in r1 if s.endswith(" e2e") == (protocol == END_TO_END)]
            best = max(
                (s for s in same if not s.startswith(("upper bound", "none"))),
                key=lambda s: r1[s],
                default=None,
            )
            if best is not None:
                parts.append(
                    f"{key[0].upper()}{key[1:]}: T2V R@1 {r1[key]:.1f} vs zero-shot {zs:.1f}; the best "
                    f"caption-trained run of its protocol ({best}, {r1[best]:.1f}) is "
                    f"{relation(r1[best], r1[key], above='above', below='below')} it."
                )
    if step0:
        beat = [b["comparison"].split(" vs ")[0] for b in step0 if b["verdict"] == "holds"]
        parts.append(
            f"Step 0: {len(beat)} of {len(step0)} trained runs beat zero-shot over test videos "
            f"and seeds ({listing(beat, ', ')}; {counts_sentence(step0)})."
        )
    parts += _curve_words(curves)
    parts += shots_words(coverage, split)
    parts += quality_words(quality)
    return " ".join(parts)


def quality_words(quality: Sequence[dict[str, Any]]) -> list[str]:
    """Attribute precision per captioner on held-out stills and on test-video frames, the
    strongest on stills first (rows of :func:`caption_quality`)."""
    if not quality:
        return []
    by = {(r["captioner"], r.get("images", "held-out stills")): r["precision"] for r in quality}
    names = sorted({c for c, _ in by}, key=lambda c: -by.get((c, "held-out stills"), 0.0))
    cells = []
    for name in names:
        on = [f"{100 * by[name, w]:.1f}% on {w}" for w in ("held-out stills", "test-video frames")
              if (name, w) in by]  # fmt: skip
        cells.append(f"{name} {' and '.join(on)}")
    return [f"Captioner quality (attribute precision): {'; '.join(cells)}."]


def lr_words(lr_choice: Sequence[dict[str, Any]], protocol: str, what: str) -> list[str]:
    """The sentence on ``protocol``'s lr (rows of the ``choose_lr`` functions): chosen on the
    validation split, with each lr's val R@1 and the untrained model's, or given."""
    rows = [r for r in lr_choice if r.get("protocol", END_TO_END) == protocol]
    if not rows:
        return []
    chosen = next(r for r in rows if r["chosen"])
    untrained = [r for r in rows if r["lr"] == 0]
    tried = ", ".join(f"{r['lr']:g}: {r['t2v R@1']:.1f}" for r in rows if r["lr"] > 0)
    how = (
        f"chosen on the validation split ({chosen['run']}, val T2V R@1 by lr {tried}; untrained "
        f"{untrained[0]['t2v R@1']:.1f})"
        if untrained
        else "given (one lr: nothing chosen on validation)"
    )
    return [f"{what}: lr {chosen['lr']:g} {how}."]


def end_to_end_words(
    boot: Sequence[dict[str, Any]],
    step0: Sequence[dict[str, Any]],
    lr_choice: Sequence[dict[str, Any]],
) -> list[str]:
    """The reading's first sentences: the paper's protocol (both towers fine-tuned), its lr
    (:func:`lr_words`), every end-to-end run against zero-shot (``step0`` rows) and the other
    end-to-end claims (``boot`` rows whose claim ends in "(end to end)"), each from the cluster
    bootstrap."""
    words = lr_words(
        lr_choice, END_TO_END, "End to end (the paper's protocol, both towers fine-tuned)"
    )
    if not words:
        return []
    rows = [b for b in step0 if b["comparison"].split(" vs ")[0].endswith(" e2e")]
    rows += [b for b in boot if b["claim"].endswith("(end to end)") and b not in rows
             and "zero_shot" not in b["comparison"]]  # fmt: skip
    if rows:
        words.append(
            "On test (paired cluster bootstrap of T2V R@1 over videos and seeds): "
            + "; ".join(f"{b['comparison']} {b['diff R@1']:+.1f} [{b['lo']:+.1f}, {b['hi']:+.1f}], "
                        f"{b['verdict']}" for b in rows)
            + "."
        )  # fmt: skip
    return words


def signal_words(step0: Sequence[dict[str, Any]], captioner_run: str | None) -> list[str]:
    """Where the end-to-end gain is, or is lost: the captioners' run (``captioner_run``), exact
    captions of the same frames (the describer) and the ground-truth video captions, each
    against zero-shot (``step0`` rows). A sentence only when all three were run."""
    rows = {b["comparison"].split(" vs ")[0]: b for b in step0}
    desc = rows.get(RunSpec(GT_DESCRIBER, 0, (), END_TO_END).key)
    truth = rows.get(RunSpec(GT_CAPTIONS, 0, (), END_TO_END).key)
    ours = rows.get(captioner_run) if captioner_run else None
    if desc is None or truth is None or ours is None:
        return []

    def said(b: dict[str, Any]) -> str:
        return f"{b['diff R@1']:+.1f} [{b['lo']:+.1f}, {b['hi']:+.1f}], {b['verdict']}"

    facts = (
        f"end to end against zero-shot, {captioner_run} {said(ours)}; exact captions of the same "
        f"frames (the describer) {said(desc)}; ground-truth video captions {said(truth)}"
    )
    if ours["verdict"] == "holds":
        verdict = "the paper's gain reproduces"
    elif truth["verdict"] != "holds":
        verdict = "not even the videos' own captions beat zero-shot: the training is the limit here"
    elif desc["verdict"] == "holds":
        verdict = (
            "exact frame captions carry the gain and the captioners' do not: their errors on video "
            "frames are the limit"
        )
    else:
        verdict = (
            "the video captions carry the gain and exact frame captions do not: what is missing is "
            "what a video's captions say beyond one frame (motion, order, the other shots), which "
            "no frame captioner supplies however accurate, not the captioners' accuracy"
        )
    return [f"Signal ({facts}): {verdict}."]


def _curve_words(curves: Sequence[dict[str, Any]]) -> list[str]:
    """Per curve: where test R@1 peaks and where it ends, against epoch 0 (= zero-shot)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in curves:
        runs.setdefault(row["run"], []).append(row)
    words = []
    for run, rows in runs.items():
        rows = sorted(rows, key=lambda r: r["epoch"])
        start, last = rows[0]["t2v R@1"], rows[-1]
        peak = max(rows, key=lambda r: r["t2v R@1"])
        words.append(
            f"{run} peaks at epoch {peak['epoch']} ({peak['t2v R@1']:.1f}) and ends at epoch "
            f"{last['epoch']} with {last['t2v R@1']:.1f}, {relation(last['t2v R@1'], start)} the "
            f"untrained {start:.1f}"
        )
    if not words:
        return []
    return [f"During training (first seed, test R@1 per epoch, a diagnostic): {'; '.join(words)}."]


def query_bootstrap(
    runs: Sequence[Any],
    claims: Sequence[tuple],
    n_boot: int,
    seed: int,
    *,
    clusters: Any = None,
    paper: Sequence[dict[str, Any]] = (),
    subset: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Each claim's T2V R@1 difference by a paired cluster bootstrap over test videos (each with
    all its queries) and the seeds of each run (``toolkit.paired_cluster_bootstrap``).

    Args:
        clusters: ``(C,)`` the video of each test query; None resamples queries (the labelled
            caption-level secondary).
        paper: keyed paper rows; the paper's difference is the effect an undecided claim is
            measured against (``underpowered`` below the minimum detectable difference).
        subset: ``(C,)`` bool, the test queries to compare on (None: all).
    """
    from vrlib.studies.toolkit import decide, paired_cluster_bootstrap

    hits: dict[str, list[np.ndarray]] = {}
    for r in runs:
        hits.setdefault(r.spec.key, []).append(100.0 * (np.asarray(r.t2v_ranks) == 1))
    keep = slice(None) if subset is None else np.asarray(subset, dtype=bool)
    per_seed = {k: np.stack(v)[:, keep] for k, v in hits.items()}  # (S, C) per run key
    groups = None if clusters is None else np.asarray(clusters)[keep]
    paper_at = {(r["setting"], r["direction"]): r["R@1"] for r in paper}
    out = []
    for better, worse, direction, words in claims:
        b = paired_cluster_bootstrap(per_seed[better], per_seed[worse], groups, n_boot=n_boot,
                                     seed=seed)  # fmt: skip
        effect = paper_at.get((better, direction), np.nan) - paper_at.get(
            (worse, direction), np.nan
        )
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse}",
                "diff R@1": b["value"],
                "lo": b["lo"],
                "hi": b["hi"],
                "MDD": b["mdd"],
                "resampled": "videos and seeds" if groups is not None else "queries and seeds",
                "verdict": decide(b, effect=effect),
            }
        )
    return out


def _shot_of_frames(events: Sequence[dict[str, Any]], frames: np.ndarray) -> set[int]:
    return {
        i for f in frames for i, ev in enumerate(events) if ev["frames"][0] <= f < ev["frames"][1]
    }


def shot_coverage(data: Any, specs: Sequence[Any]) -> list[dict[str, Any]]:
    """Per rule, over the multi-shot training videos: the mean share of a video's shots that its
    candidate captions come from, and the share of videos whose candidates all come from one
    shot (a Top-K of one scene's frames describes only that scene).

    Args:
        data: ``captions.runs.TrainData``; specs: the runs' ``RunSpec`` (upper bounds skipped).
    """
    from vrlib.studies.captions.data import selection_for, video_events

    events = video_events(data.dataset.videos)
    multi = [i for i, ev in enumerate(events) if len(ev) > 1]
    if not multi or not data.tables:
        return []
    frames = next(iter(data.tables.values())).frame_indices  # (V, M), the same for every captioner
    m = frames.shape[1]
    out = []
    for spec in specs:
        if spec.is_upper_bound or not spec.captioners:
            continue
        sel = selection_for(spec, data)
        shares, one = [], 0
        for v in multi:
            shots = _shot_of_frames(events[v], frames[v][np.asarray(sel.indices[v]) % m])
            shares.append(len(shots) / len(events[v]))
            one += len(shots) <= 1
        out.append({"run": spec.key, "multi_shot_videos": len(multi),
                    "shot_coverage": 100.0 * float(np.mean(shares)),
                    "one_shot_only": 100.0 * one / len(multi)})  # fmt: skip
    return out


def by_shots(runs: Sequence[Any], claims: Sequence[tuple], shots: np.ndarray,
             caption_to_video: np.ndarray, n_boot: int, seed: int) -> list[dict[str, Any]]:  # fmt: skip
    """``query_bootstrap`` of ``claims`` on the queries of single-shot and of multi-shot test
    videos apart (each row gains ``videos``: "single-shot" or "multi-shot")."""
    c2v = np.asarray(caption_to_video)
    per_query = np.asarray(shots)[c2v]
    out = []
    for name, keep in (("single-shot", per_query == 1), ("multi-shot", per_query > 1)):
        if keep.any():
            rows = query_bootstrap(runs, claims, n_boot, seed, clusters=c2v, subset=keep)
            out += [{"videos": name, "n_queries": int(keep.sum())} | r for r in rows]
    return out


def shots_words(coverage: Sequence[dict[str, Any]], split: Sequence[dict[str, Any]]) -> list[str]:
    """The reading's sentences on shot coverage and the single- vs multi-shot comparisons."""
    parts = []
    if coverage:
        parts.append(
            f"Shot coverage on the {coverage[0]['multi_shot_videos']} multi-shot training videos "
            "(share of a video's shots its candidate captions come from; candidates all from one "
            "shot): " + "; ".join(f"{c['run']} {c['shot_coverage']:.0f}% ({c['one_shot_only']:.0f}%)"
                                  for c in coverage) + "."
        )  # fmt: skip
    if split:
        parts.append(
            "By test video (paired cluster bootstrap of T2V R@1 on each subset): "
            + "; ".join(f"{r['comparison']} on {r['videos']} videos {r['diff R@1']:+.1f} "
                        f"[{r['lo']:+.1f}, {r['hi']:+.1f}], {r['verdict']}" for r in split)
            + "."
        )  # fmt: skip
    return parts


def reading_from_metrics(doc: dict[str, Any]) -> str:
    """The reading again, from a report's metrics.json alone (what the notebook wrote)."""
    return reading(keyed(doc["rows"]), doc["claims"], doc["claims_bootstrap"],
                   doc["captioner_quality"], doc["training_curves"], doc.get("step0", ()),
                   doc.get("shot_coverage", ()), doc.get("by_shots", ()),
                   doc.get("lr_choice", ()))  # fmt: skip
