"""Bootstrap intervals that count videos, not captions, and verdicts with declared margins.

Why a cluster bootstrap: the captions of one video share its difficulty (on the embedded world
the intra-video correlation of R@1 reaches 0.19, a design effect near 5), so resampling captions
as if independent gives intervals far too narrow. ``cluster_bootstrap`` resamples *clusters*
(videos, each with all its captions; twin pairs for twin accuracy) and, where a setting was
trained with several seeds, the seeds as a second level. Caption-level resampling
(``bootstrap_ci``, ``paired_bootstrap``) stays only as a labelled secondary.

Why verdicts with margins: "the interval includes 0" is no evidence that two settings are
equal, and "the upper bound is above 0" is no evidence that one is not worse. ``decide`` says
``holds`` only when the interval shows it: greater (lower bound > 0), non-inferior (lower bound
> -margin), equivalent (two one-sided tests inside +-margin). Identical outputs are "not
distinguishable", never "holds". An undecided comparison is ``underpowered`` when the effect it
looks for is below the minimum detectable difference at this test size, else ``within noise``.

Imports nothing from ``vrlib``; ``toolkit`` re-exports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

Z_TWO_SIDED_95 = 1.959963984540054  # z_{0.975}
Z_POWER_80 = 0.8416212335729143  # z_{0.80}: 80% power
IDENTICAL = "not distinguishable (identical outputs)"
# The buckets every claims table is counted in, in reading order.
VERDICTS = ("holds", "reversed", "within noise", "underpowered", "identical outputs",
            "uninformative")  # fmt: skip
UNINFORMATIVE = "uninformative"  # a verdict's first word where the comparison cannot read its claim
Claim = Literal["greater", "not_worse", "equivalent"]

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


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def minimum_detectable(se: float, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at ``level`` detects with ``power``:
    ``(z_{(1+level)/2} + z_power) * se`` (2.80 SE at 95% and 80%)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf
    return (z((1 + level) / 2) + z(power)) * se


def _interval(value: float, stats: np.ndarray, level: float, n: int) -> dict[str, Any]:
    """Percentile interval, the one-sided bounds for two one-sided tests, SE and MDD."""
    alpha = 1 - level
    lo, hi, tost_lo, tost_hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2, alpha, 1 - alpha])
    se = float(stats.std(ddof=1)) if len(stats) > 1 else 0.0
    return {
        "value": value,
        "lo": float(lo),
        "hi": float(hi),
        "tost_lo": float(tost_lo),
        "tost_hi": float(tost_hi),
        "se": se,
        "mdd": minimum_detectable(se, level),
        "n": n,
        "n_boot": len(stats),
        "level": level,
    }


def bootstrap_ci(
    values: Sequence[float] | np.ndarray | None = None,
    *,
    statistic: Callable[[np.ndarray], float] | None = None,
    n_units: int | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Percentile bootstrap over independent units (the caption-level secondary; see
    ``cluster_bootstrap`` for captions grouped by video).

    Give either ``values`` (one number per unit; the statistic is their mean) or ``statistic``
    (a function of an ``(n,)`` index array into the units) with ``n_units``.

    Returns:
        ``{"value", "lo", "hi", "tost_lo", "tost_hi", "se", "mdd", "n", "n_boot", "level"}``:
        ``value`` is the statistic on all units, ``lo``/``hi`` the ``(1-level)/2`` and
        ``(1+level)/2`` quantiles of the resampled statistics, ``se`` their standard deviation.

    Raises:
        ValueError: neither or both inputs, no units, or ``level`` outside (0, 1).
    """
    if (values is None) == (statistic is None):
        raise ValueError("give exactly one of values= or statistic= (with n_units=)")
    _check_level(level)
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
    return _interval(value, np.concatenate(stats), level, n)


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Caption-level paired bootstrap of the mean difference ``a - b`` (the labelled secondary).

    Returns:
        ``bootstrap_ci`` of the differences plus ``verdict`` (``decide`` with ``"greater"``).

    Raises:
        ValueError: ``a`` and ``b`` do not have one value per unit each, the same units.
    """
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"a {xa.shape} and b {xb.shape} must be one value per unit, same units")
    out: dict[str, Any] = bootstrap_ci(xa - xb, n_boot=n_boot, level=level, seed=seed)
    out["identical"] = bool(np.array_equal(xa, xb))
    out["verdict"] = decide(out)
    return out


# ----------------------------------------------------------------------------- clusters and seeds


def _as_seeds_by_units(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    x = x[None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be (units,) or (seeds, units), got shape {x.shape}")
    return x  # (S, n)


def _resampled_means(
    arms: Sequence[tuple[np.ndarray, float]], clusters: Any, n_boot: int, seed: int
) -> tuple[float, np.ndarray, int]:
    """Weighted sum over ``arms`` of (mean over seeds of the per-unit mean), on all data and on
    ``n_boot`` resamples that draw clusters (shared by every arm: the comparison is paired) and,
    within each arm, seeds. Returns ``(value, stats (n_boot,), n_clusters)``."""
    n = arms[0][0].shape[1]
    labels = np.arange(n) if clusters is None else np.asarray(clusters)
    if labels.shape != (n,):
        raise ValueError(f"clusters must give one label per unit ({n}), got shape {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)  # (G,) units per cluster
    g = len(counts)
    sums = [
        np.stack([np.bincount(inverse, weights=row, minlength=g) for row in x]) for x, _ in arms
    ]  # each (S, G): per seed, the sum of a cluster's values
    value = sum(
        w * float(s.mean(0).sum() / counts.sum()) for s, (_, w) in zip(sums, arms, strict=True)
    )
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_boot, _BLOCK):
        b = min(_BLOCK, n_boot - start)
        pick = rng.integers(0, g, size=(b, g))  # (b, G) clusters drawn, as resample_indices does
        total = np.zeros(b)
        for s, (_, w) in zip(sums, arms, strict=True):
            seeds = s.shape[0]
            per_cluster = (
                s.mean(0)[None]
                if seeds == 1
                else s[rng.integers(0, seeds, size=(b, seeds))].mean(1)
            )
            total += w * np.take_along_axis(np.broadcast_to(per_cluster, (b, g)), pick, axis=1).sum(
                1
            )
        out.append(total / counts[pick].sum(1))
    return value, np.concatenate(out), g


def cluster_bootstrap(
    values: Any,
    clusters: Any = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Bootstrap of a mean over units that come in clusters, with seeds as a second level.

    Args:
        values: ``(n,)`` one number per unit (caption), or ``(S, n)`` one row per seed.
        clusters: ``(n,)`` the cluster of each unit (its video; its twin pair); None = each
            unit is its own cluster (then, with one seed, this equals ``bootstrap_ci``).

    Returns:
        ``bootstrap_ci``'s fields (``n`` = units) plus ``n_clusters``, ``n_seeds`` and
        ``resampled`` (what was drawn, for the table).
    """
    _check_level(level)
    x = _as_seeds_by_units(values, "values")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    value, stats, g = _resampled_means([(x, 1.0)], clusters, n_boot, seed)
    out = _interval(value, stats, level, x.shape[1])
    out.update(n_clusters=g, n_seeds=x.shape[0], resampled=_resampled_words(clusters, x.shape[0]))
    return out


def paired_cluster_bootstrap(
    a: Any,
    b: Any,
    clusters: Any = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Does ``a`` beat ``b`` on the same units? The mean difference, resampling clusters (the
    same draw for both: paired) and each side's seeds.

    Args:
        a, b: ``(n,)`` or ``(seeds, n)`` per-unit values of two settings on the same units (the
            seed counts may differ).
        clusters: as in ``cluster_bootstrap``.

    Returns:
        ``cluster_bootstrap``'s fields for the difference, ``identical`` (every value of ``a``
        equals ``b``'s) and ``verdict`` (``decide`` with ``"greater"``).
    """
    _check_level(level)
    xa, xb = _as_seeds_by_units(a, "a"), _as_seeds_by_units(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"a {xa.shape} and b {xb.shape} must be scored on the same units")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    value, stats, g = _resampled_means([(xa, 1.0), (xb, -1.0)], clusters, n_boot, seed)
    out = _interval(value, stats, level, xa.shape[1])
    seeds = max(xa.shape[0], xb.shape[0])
    out.update(n_clusters=g, n_seeds=seeds, resampled=_resampled_words(clusters, seeds))
    out["identical"] = xa.shape == xb.shape and bool(np.array_equal(xa, xb))
    out["verdict"] = decide(out)
    return out


def _resampled_words(clusters: Any, seeds: int) -> str:
    what = "units" if clusters is None else "clusters"
    return f"{what} and seeds" if seeds > 1 else what


# ----------------------------------------------------------------------------- verdicts


def decide(
    test: dict[str, Any],
    claim: Claim = "greater",
    *,
    margin: float = 0.0,
    effect: float | None = None,
) -> str:
    """The verdict on a claim about a difference, from its bootstrap (``lo``, ``hi``, ``tost_lo``,
    ``tost_hi``, ``mdd``, and ``identical`` where known).

    Args:
        claim: ``"greater"`` (the difference is above 0: lower bound > 0), ``"not_worse"``
            (non-inferiority: lower bound > -margin), ``"equivalent"`` (two one-sided tests:
            the ``1 - 2 alpha`` interval inside (-margin, margin)).
        margin: the declared margin (> 0 for not_worse and equivalent), in the table's units.
        effect: the size of the effect looked for (e.g. the paper's difference); an undecided
            greater-claim is ``underpowered`` when ``|effect|`` is below the minimum detectable
            difference. For not_worse and equivalent the margin plays that role.

    Returns:
        ``holds``, ``reversed`` (the data show the opposite: below 0; worse by more than the
        margin; differ by more than the margin), ``within noise``, ``underpowered``, or
        ``IDENTICAL`` when both settings gave the same outputs.
    """
    if claim not in ("greater", "not_worse", "equivalent"):
        raise ValueError(f"unknown claim {claim!r}; valid: greater, not_worse, equivalent")
    if claim != "greater" and not margin > 0:
        raise ValueError(f"a {claim} claim needs a declared margin > 0, got {margin}")
    if test.get("identical"):
        return IDENTICAL
    lo, hi = test["lo"], test["hi"]
    if claim == "greater":
        if lo > 0:
            return "holds"
        if hi < 0:
            return "reversed"
        size = None if effect is None or math.isnan(effect) else abs(effect)
    elif claim == "not_worse":
        if lo > -margin:
            return "holds"
        if hi < -margin:
            return "reversed"
        size = margin
    else:
        if test["tost_lo"] > -margin and test["tost_hi"] < margin:
            return "holds"
        if lo > margin or hi < -margin:
            return "reversed"
        size = margin
    return "underpowered" if size is not None and size < test["mdd"] else "within noise"


def bucket(verdict: str) -> str:
    """Which of ``VERDICTS`` a verdict counts in (identical outputs and "uninformative ..."
    apart; anything else that does not hold, e.g. "one seed, no error bar", counts as within
    noise)."""
    if verdict == IDENTICAL:
        return "identical outputs"
    if verdict.startswith(UNINFORMATIVE):
        return UNINFORMATIVE
    return verdict if verdict in VERDICTS else "within noise"


def count_verdicts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """``{bucket: count}`` over rows with a ``verdict``, every bucket of ``VERDICTS`` present."""
    counts = dict.fromkeys(VERDICTS, 0)
    for r in rows:
        counts[bucket(r["verdict"])] += 1
    return counts


def counts_sentence(rows: Sequence[dict[str, Any]]) -> str:
    """``"2 hold, 1 reversed, 3 within noise, 2 underpowered"`` (identical outputs only if any)."""
    c = count_verdicts(rows)
    words = [f"{c['holds']} hold", f"{c['reversed']} reversed", f"{c['within noise']} within noise",
             f"{c['underpowered']} underpowered"]  # fmt: skip
    if c["identical outputs"]:
        words.append(f"{c['identical outputs']} not distinguishable (identical outputs)")
    if c[UNINFORMATIVE]:
        words.append(f"{c[UNINFORMATIVE]} uninformative")
    return ", ".join(words)
