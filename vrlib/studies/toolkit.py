"""What every study needs to put its numbers beside a paper's and say what they mean.

Every study turns ``vrlib.metrics.evaluate`` results into metrics.json rows, sets the paper's
figures beside ours, averages over seeds, asks whether a paper's comparison "holds" here, puts a
bootstrap confidence interval on a number, and writes a reading whose words follow from the
numbers. Written once here, so that studies 01-05 say the same thing the same way.

Why in ``vrlib.studies`` and not in ``vrlib.report``: only studies (and their notebooks) compute
rows and readings; ``vrlib.report`` only writes and rolls up what a notebook hands it. Keeping the
rows here, below ``report`` and beside each study, lets the data flow one way
(``studies`` → ``report`` → ``cli``, enforced by import-linter). It imports only its sibling
``vrlib.studies.bootstrap`` (cluster bootstrap and verdicts, re-exported here), so any study
module can use it without pulling in another study.

Sections: results rows · paper figures beside ours · seeds · claims (over seeds, or paired over
videos) · readings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vrlib.studies.bootstrap import (  # noqa: F401  (re-exported: the studies' one toolkit)
    IDENTICAL,
    VERDICTS,
    bootstrap_ci,
    bucket,
    cluster_bootstrap,
    count_verdicts,
    counts_sentence,
    decide,
    minimum_detectable,
    paired_bootstrap,
    paired_cluster_bootstrap,
    resample_indices,
)

# The metrics of ``vrlib.metrics.evaluate`` that a results row keeps, in metrics.json's order.
METRIC_KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR", "StdR", "n")

Row = dict[str, Any]


# ----------------------------------------------------------------------------- results rows


def rows_from_metrics(setting: str, split: str, result: dict[str, Any], **more: Any) -> list[Row]:
    """Turn ``vrlib.metrics.evaluate``'s result into metrics.json rows (one per direction).

    Args:
        setting: the row's setting name (as in ``vrlib.papers``, so the paper's row matches).
        split: the split (and protocol) it was measured on, e.g. ``test-all-captions``.
        result: ``{"t2v": {...}, "v2t": {...}}``; a missing direction gives no row.
        more: extra fields added to every row (e.g. ``seed=3``).
    """
    rows = []
    for direction in ("t2v", "v2t"):
        if direction in result:
            row = {"setting": setting, "split": split, "direction": direction}
            row.update({k: result[direction][k] for k in METRIC_KEYS if k in result[direction]})
            row.update(more)
            rows.append(row)
    return rows


def lookup(rows: Sequence[Row], metric: str, **match: Any) -> Any:
    """The ``metric`` of the one row whose fields equal ``match`` (e.g. ``setting="mean"``).

    Raises:
        KeyError: no row matches (the message lists what was asked).
    """
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r[metric]
    raise KeyError(f"no row with {match} among {len(rows)} rows")


# ----------------------------------------------------------------------------- paper beside ours


def beside_paper(
    ours: Sequence[Row],
    paper: Sequence[Row],
    on: Sequence[str],
    metrics: Sequence[str],
    paper_metrics: Sequence[str],
):
    """Our rows with the paper's figures joined beside them as ``paper <metric>`` columns.

    A row of ours with no paper row keeps NaN there (a left join): the paper never ran it.

    Args:
        ours: our rows; the table keeps ``on`` then ``metrics``, in that order.
        paper: ``vrlib.papers.paper_rows(...)`` (filter it to the comparable protocol first).
        on: the fields that identify a row in both (e.g. ``("setting", "split", "direction")``).
    """
    import pandas as pd

    mine = pd.DataFrame(list(ours))[[*on, *metrics]]
    theirs = pd.DataFrame(list(paper), columns=[*on, *paper_metrics])
    theirs = theirs.rename(columns={m: f"paper {m}" for m in paper_metrics})
    return mine.merge(theirs, on=list(on), how="left")


def paper_table(
    summary: Sequence[Row],
    paper: Sequence[Row],
    settings: Sequence[str],
    metrics: Sequence[str] = ("R@1", "R@5", "R@10", "MdR", "MnR"),
):
    """One row per (setting, direction): ours (mean, ``±`` std over seeds) beside the paper's.

    Args:
        summary: rows of ``aggregate_seeds`` (with ``n_seeds`` and ``<metric>_std``).
        settings: which settings, in the table's order.
    """
    import pandas as pd

    theirs = {(r["setting"], r["direction"]): r for r in paper}
    rows = []
    for setting in settings:
        for r in (x for x in summary if x["setting"] == setting):
            row = {"setting": setting, "direction": r["direction"], "seeds": r["n_seeds"]}
            for m in metrics:
                row[m], row[f"{m} ±"] = r[m], r[f"{m}_std"]
            p = theirs.get((setting, r["direction"]), {})
            row.update({f"paper {m}": p.get(m, math.nan) for m in metrics})
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- seeds


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value); None and nan are ignored."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def aggregate_seeds(
    rows: Sequence[Row],
    keys: Sequence[str] = ("setting", "split", "direction"),
    metrics: Sequence[str] | None = None,
) -> list[Row]:
    """Per-seed rows -> one row per ``keys`` group with each metric's mean and ``<metric>_std``.

    Args:
        rows: dicts with the ``keys``, a ``seed`` and numeric metrics.
        metrics: which fields to aggregate; default: every numeric field but ``seed`` and ``n``
            (``n``, the number of queries, must agree across seeds and is kept as is).

    Returns:
        Rows in first-seen order of their group: the keys, ``n`` (when present), ``n_seeds``,
        then ``metric`` and ``metric_std`` for each metric.

    Raises:
        ValueError: a group lists one seed twice, or its rows disagree on ``n``.
    """
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in groups.items():
        seeds = [r.get("seed") for r in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"group {key} has repeated seeds {seeds}")
        names = metrics or [
            k for k, v in group[0].items()
            if k not in (*keys, "seed", "n") and isinstance(v, int | float) and not isinstance(v, bool)
        ]  # fmt: skip
        row: Row = dict(zip(keys, key, strict=True))
        if "n" in group[0]:
            ns = {r["n"] for r in group}
            if len(ns) > 1:
                raise ValueError(f"group {key}: rows disagree on n ({sorted(ns)})")
            row["n"] = group[0]["n"]
        row["n_seeds"] = len(group)
        for m in names:
            row[m], row[f"{m}_std"] = mean_std([r[m] for r in group])
        out.append(row)
    return out


def best_setting(
    summary: Sequence[Row], prefix: str, direction: str = "t2v", metric: str = "R@1"
) -> str | None:
    """The setting starting with ``prefix`` with the highest ``metric`` (ties: the later name)."""
    cands = [r for r in summary if r["setting"].startswith(prefix) and r["direction"] == direction]
    if not cands:
        return None
    return max(cands, key=lambda r: (r[metric], r["setting"]))["setting"]


# ----------------------------------------------------------------------------- claims


def compare(
    summary: Sequence[Row],
    a: str,
    b: str,
    direction: str,
    metric: str = "R@1",
    *,
    effect: float | None = None,
) -> dict[str, Any] | None:
    """``a`` minus ``b`` on ``metric`` (means over seeds) with a rough 2-standard-error verdict.

    The standard error of the difference of two seed means is ``sqrt(sa^2/na + sb^2/nb)``; the
    verdict is ``"holds"`` if the difference exceeds twice that, ``"reversed"`` if it is below
    minus twice that, else ``"underpowered"`` when ``|effect|`` (e.g. the paper's difference) is
    below the minimum detectable difference (2.80 SE), else ``"within noise"``. With a single
    seed on either side there is no error estimate and a nonzero difference is ``"one seed, no
    error bar"``; equal means from identical per-seed values are ``IDENTICAL``. With 3 seeds
    this is a rough screen, not a test. None when either setting has no row.
    """
    rows = {(r["setting"], r["direction"]): r for r in summary}
    ra, rb = rows.get((a, direction)), rows.get((b, direction))
    if ra is None or rb is None:
        return None
    diff = ra[metric] - rb[metric]
    se = math.sqrt(
        ra[f"{metric}_std"] ** 2 / ra["n_seeds"] + rb[f"{metric}_std"] ** 2 / rb["n_seeds"]
    )
    test = {"lo": diff - 2 * se, "hi": diff + 2 * se, "mdd": minimum_detectable(se)}
    test["identical"] = diff == 0 and se == 0
    verdict = decide(test, effect=effect)
    if min(ra["n_seeds"], rb["n_seeds"]) < 2 and diff != 0:
        verdict = "one seed, no error bar"
    return {"diff": diff, "se": se, "mdd": test["mdd"], "verdict": verdict}


def claims_table(
    summary: Sequence[Row],
    paper: Sequence[Row],
    claims: Sequence[tuple[str, str, str, str]],
    metric: str = "R@1",
) -> list[Row]:
    """Each paper claim ``(better, worse, direction, words)``: the paper's difference, ours, our
    verdict over seeds (``compare``; undecided claims whose paper effect is below the minimum
    detectable difference read ``underpowered``).

    Claims whose settings were not run are left out (``compare`` gives None).
    """
    paper_at = {(r["setting"], r["direction"]): r[metric] for r in paper}
    out = []
    for better, worse, direction, words in claims:
        theirs = paper_at.get((better, direction), math.nan) - paper_at.get(
            (worse, direction), math.nan
        )
        ours = compare(summary, better, worse, direction, metric, effect=theirs)
        if ours is None:
            continue
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse} ({direction.upper()} {metric})",
                "paper diff": theirs,
                "ours diff": ours["diff"],
                "ours 2*SE": 2 * ours["se"],
                "MDD": ours["mdd"],
                "verdict": ours["verdict"],
            }
        )
    return out


def paired_claims_table(
    claims: Sequence[tuple[str, str, str, str]],
    units: Callable[[str, str], np.ndarray | None],
    paper: Sequence[Row] = (),
    *,
    clusters: Callable[[str], np.ndarray | None] | None = None,
    metric: str = "R@1",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Row]:
    """Each claim ``(better, worse, key, words)`` decided by a paired cluster bootstrap.

    Args:
        claims: ``key`` names what is compared, e.g. a direction (``"t2v"``) or ``"twin"``.
        units: ``units(setting, key)`` -> per-unit values ``(n,)``, or ``(seeds, n)`` to
            resample seeds too; the same units for every setting, on the table's scale (e.g.
            100 x hit); None when the setting was not run (the claim is left out).
        paper: rows with ``setting``, ``direction`` and ``metric``: the paper's difference is
            given where both settings have a row for ``key``, else nan. It is the effect an
            undecided claim is measured against (``underpowered`` when below the MDD).
        clusters: ``clusters(key)`` -> ``(n,)`` the cluster (video, twin pair) of each unit
            of ``key``; None (or a None answer) = each unit its own cluster.

    Returns:
        Rows with ``claim``, ``comparison``, ``paper diff``, ``ours diff`` (mean difference),
        ``CI lo``/``CI hi`` (its bootstrap interval), ``MDD`` (minimum detectable difference),
        ``n`` (units), ``clusters``, ``resampled`` and ``verdict`` (``decide``'s words).
    """
    paper_at = {(r["setting"], r["direction"]): r[metric] for r in paper}
    out = []
    for better, worse, key, words in claims:
        a, b = units(better, key), units(worse, key)
        if a is None or b is None:
            continue
        groups = clusters(key) if clusters is not None else None
        test = paired_cluster_bootstrap(a, b, groups, n_boot=n_boot, seed=seed)
        theirs = paper_at.get((better, key), math.nan) - paper_at.get((worse, key), math.nan)
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse} ({key})",
                "paper diff": theirs,
                "ours diff": test["value"],
                "CI lo": test["lo"],
                "CI hi": test["hi"],
                "MDD": test["mdd"],
                "n": test["n"],
                "clusters": test["n_clusters"],
                "resampled": test["resampled"],
                "verdict": decide(test, effect=theirs),
            }
        )
    return out


STEP0_CLAIM = "beats step 0"  # the words every step-0 claim carries, so readings can find them


def against_step0(
    settings: Sequence[str], step0: str, key: str = "t2v"
) -> list[tuple[str, str, str, str]]:
    """Claims ``(setting, step0, key, words)``: every trained setting against step 0, the
    untrained model (or the zero-shot expert) tested under the same protocol.

    Why: a trained row means little without the row it started from; on a world where training
    gains 1.4 R@1 over zero-shot, "A beats B" can hide that neither beats step 0. Decide them with
    ``paired_claims_table`` (or a study's own bootstrap) like any claim.
    """
    return [
        (s, step0, key, f"training {s} {STEP0_CLAIM} ({step0})") for s in settings if s != step0
    ]


# ----------------------------------------------------------------------------- readings


def relation(
    a: float,
    b: float,
    margin: float = 0.0,
    *,
    above: str = "above",
    below: str = "below",
    within: str | None = None,
) -> str:
    """The word for how ``a`` stands to ``b``: ``above`` if ``a > b + margin``, ``below`` if
    ``a < b - margin``, else ``within`` (default ``"within {margin} points of"``).

    Why: a reading says "above" only when the number is above; one function keeps every study's
    sentences tied to its numbers the same way (e.g. ``above="beats", below="does not beat",
    within="does not beat"``).
    """
    if a > b + margin:
        return above
    if a < b - margin:
        return below
    return within if within is not None else f"within {margin:g} points of"


def listing(items: Sequence[str], sep: str = "; ", empty: str = "none") -> str:
    """``items`` joined by ``sep``, or ``empty`` when there are none (never an empty parenthesis)."""
    return sep.join(items) or empty


def claims_reading(claims: Sequence[Row], what: str, how: str) -> list[str]:
    """Sentences saying how many of ``claims`` (from ``claims_table``) hold, and which do not.

    Args:
        what: what the claims are, e.g. ``"the paper's Table 1 comparisons"``.
        how: the criterion, e.g. ``"by more than 2 standard errors over seeds"``.
    """
    held = [c for c in claims if c["verdict"] == "holds"]
    parts = [
        f"{len(held)} of {len(claims)} of {what} hold here {how} "
        f"({listing([c['comparison'] for c in held])}); {counts_sentence(claims)}."
    ]
    others = [c for c in claims if c["verdict"] != "holds"]
    if others:
        parts.append(
            "Not reproduced: "
            + "; ".join(f"{c['comparison']}: {c['verdict']} ({_why(c)})" for c in others)
            + "."
        )
    return parts


def _why(claim: Row) -> str:
    """Our difference; for an underpowered claim, the paper's effect against the MDD."""
    words = f"{claim['ours diff']:+.1f}"
    if claim["verdict"] == "underpowered":
        words += f"; paper {claim['paper diff']:+.1f} is below the MDD {claim['MDD']:.1f}"
    return words
