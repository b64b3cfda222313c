"""What every study needs to put its numbers beside a paper's and say what they mean.

Every study turns ``vrlib.metrics.evaluate`` results into metrics.json rows, sets the paper's
figures beside ours, averages over seeds, asks whether a paper's comparison "holds" here, puts a
bootstrap confidence interval on a number, and writes a reading whose words follow from the
numbers. Written once here, so that studies 01-05 say the same thing the same way.

Why in ``vrlib.studies`` and not in ``vrlib.report``: only studies (and their notebooks) compute
rows and readings; ``vrlib.report`` only writes and rolls up what a notebook hands it. Keeping the
rows here, below ``report`` and beside each study, lets the data flow one way
(``studies`` → ``report`` → ``cli``, enforced by import-linter). It imports nothing from ``vrlib``,
so any study module can use it without pulling in another study.

Sections: results rows · paper figures beside ours · seeds · claims (over seeds, or paired over
units) · bootstrap · readings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

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
    summary: Sequence[Row], a: str, b: str, direction: str, metric: str = "R@1"
) -> dict[str, Any] | None:
    """``a`` minus ``b`` on ``metric`` (means over seeds) with a rough 2-standard-error verdict.

    The standard error of the difference of two seed means is ``sqrt(sa^2/na + sb^2/nb)``; the
    verdict is ``"holds"`` if the difference exceeds twice that, ``"reversed"`` if it is below
    minus twice that, else ``"within noise"``; with a single seed on either side there is no
    error estimate and a nonzero difference is ``"one seed, no error bar"``. With 3 seeds this is
    a rough screen, not a test. None when either setting has no row.
    """
    rows = {(r["setting"], r["direction"]): r for r in summary}
    ra, rb = rows.get((a, direction)), rows.get((b, direction))
    if ra is None or rb is None:
        return None
    diff = ra[metric] - rb[metric]
    se = math.sqrt(
        ra[f"{metric}_std"] ** 2 / ra["n_seeds"] + rb[f"{metric}_std"] ** 2 / rb["n_seeds"]
    )
    verdict = "holds" if diff > 2 * se else "reversed" if diff < -2 * se else "within noise"
    if min(ra["n_seeds"], rb["n_seeds"]) < 2 and diff != 0:
        verdict = "one seed, no error bar"
    return {"diff": diff, "se": se, "verdict": verdict}


def claims_table(
    summary: Sequence[Row],
    paper: Sequence[Row],
    claims: Sequence[tuple[str, str, str, str]],
    metric: str = "R@1",
) -> list[Row]:
    """Each paper claim ``(better, worse, direction, words)``: the paper's difference, ours, our verdict.

    Claims whose settings were not run are left out (``compare`` gives None).
    """
    paper_at = {(r["setting"], r["direction"]): r[metric] for r in paper}
    out = []
    for better, worse, direction, words in claims:
        ours = compare(summary, better, worse, direction, metric)
        if ours is None:
            continue
        theirs = paper_at.get((better, direction), math.nan) - paper_at.get(
            (worse, direction), math.nan
        )
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse} ({direction.upper()} {metric})",
                "paper diff": theirs,
                "ours diff": ours["diff"],
                "ours 2*SE": 2 * ours["se"],
                "verdict": ours["verdict"],
            }
        )
    return out


def paired_claims_table(
    claims: Sequence[tuple[str, str, str, str]],
    units: Callable[[str, str], np.ndarray | None],
    paper: Sequence[Row] = (),
    *,
    metric: str = "R@1",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Row]:
    """Each claim ``(better, worse, key, words)`` decided by a paired bootstrap over units.

    Args:
        claims: ``key`` names what is compared, e.g. a direction (``"t2v"``) or ``"twin"``.
        units: ``units(setting, key)`` -> one value per unit (query, twin pair...), the same
            units for every setting, already on the scale of the table (e.g. 100 x hit); None
            when the setting was not run (the claim is left out).
        paper: rows with ``setting``, ``direction`` and ``metric``: the paper's difference is
            given where both settings have a row for ``key``, else nan.

    Returns:
        Rows with ``claim``, ``comparison``, ``paper diff``, ``ours diff`` (mean difference),
        ``CI lo``/``CI hi`` (its bootstrap interval), ``n`` (units) and ``verdict``
        (``paired_bootstrap``'s words; what ``claims_reading`` reads).
    """
    paper_at = {(r["setting"], r["direction"]): r[metric] for r in paper}
    out = []
    for better, worse, key, words in claims:
        a, b = units(better, key), units(worse, key)
        if a is None or b is None:
            continue
        test = paired_bootstrap(a, b, n_boot=n_boot, seed=seed)
        theirs = paper_at.get((better, key), math.nan) - paper_at.get((worse, key), math.nan)
        out.append(
            {
                "claim": words,
                "comparison": f"{better} vs {worse} ({key})",
                "paper diff": theirs,
                "ours diff": test["value"],
                "CI lo": test["lo"],
                "CI hi": test["hi"],
                "n": test["n"],
                "verdict": test["verdict"],
            }
        )
    return out


# ----------------------------------------------------------------------------- bootstrap

_BLOCK = 256  # resamples drawn per block: bounds memory at _BLOCK x n indices


def resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of bootstrap resamples of ``n`` units: ``(b, n)`` int64 indices, ``n_boot`` rows in all.

    Every bootstrap here draws through this, so the same ``seed`` gives the same resamples whether
    a study passes per-unit values or a function of the indices.
    """
    if n < 1:
        raise ValueError(f"bootstrap needs at least one unit, got n={n}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _BLOCK):
        yield rng.integers(0, n, size=(min(_BLOCK, n_boot - start), n), dtype=np.int64)  # (b, n)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray | None = None,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_units: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile bootstrap confidence interval over units (queries, captions, twin pairs...).

    Give either ``values`` (one number per unit; the statistic is their mean) or ``statistic``
    (a function of an ``(n,)`` index array into the units, e.g. R@1 of the resampled captions)
    with ``n_units``.

    Returns:
        ``{"value", "lo", "hi", "n", "n_boot", "level"}``: ``value`` is the statistic on all
        units, ``lo``/``hi`` the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the resampled
        statistics.

    Raises:
        ValueError: neither or both inputs, no units, or ``level`` outside (0, 1).
    """
    if (values is None) == (statistic is None):
        raise ValueError("give exactly one of values= or statistic= (with n_units=)")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if values is not None:
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"values must be one number per unit, got shape {x.shape}")
        n, value = len(x), float(x.mean()) if len(x) else math.nan
        stats = [x[idx].mean(axis=1) for idx in resample_indices(n, n_boot, seed)]  # (b,) each
    else:
        if n_units is None:
            raise ValueError("statistic= needs n_units= (how many units to resample)")
        n, value = n_units, float(statistic(np.arange(n_units)))
        stats = [
            np.array([statistic(row) for row in idx]) for idx in resample_indices(n, n_boot, seed)
        ]
    lo, hi = np.quantile(np.concatenate(stats), [(1 - level) / 2, (1 + level) / 2])
    return {
        "value": value,
        "lo": float(lo),
        "hi": float(hi),
        "n": n,
        "n_boot": n_boot,
        "level": level,
    }


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Does ``a`` beat ``b`` on the same units? Bootstrap of the mean per-unit difference ``a - b``.

    Pairing matters: two settings scored on the same queries share each query's difficulty, so
    resampling the differences is far tighter than comparing two separate intervals.

    Returns:
        ``bootstrap_ci`` of the differences (``value`` = mean difference) plus ``verdict``:
        ``"holds"`` when the whole interval is above 0, ``"reversed"`` when below, else
        ``"within noise"`` (the words of ``compare``).

    Raises:
        ValueError: ``a`` and ``b`` do not have one value per unit each, the same units.
    """
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"a {xa.shape} and b {xb.shape} must be one value per unit, same units")
    out: dict[str, Any] = bootstrap_ci(xa - xb, n_boot=n_boot, level=level, seed=seed)
    out["verdict"] = "holds" if out["lo"] > 0 else "reversed" if out["hi"] < 0 else "within noise"
    return out


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
        f"({listing([c['comparison'] for c in held])})."
    ]
    others = [c for c in claims if c["verdict"] != "holds"]
    if others:
        parts.append(
            "Not reproduced: "
            + "; ".join(
                f"{c['comparison']}: {c['verdict']} ({c['ours diff']:+.1f})" for c in others
            )
            + "."
        )
    return parts
