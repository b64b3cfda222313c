"""Cluster-bootstrap intervals of retrieval metrics: resample videos with all their captions.

Why clusters: the captions of one video are not independent queries (MSR-VTT Full has 20 per
video, all about the same clip), so resampling captions one by one understates the spread. The
unit that varies is the video (DESIGN.md: "intervals resample the unit that varies"); a draw takes
videos with replacement and keeps every query of each drawn video.

What is held fixed: the gallery. Each query's rank is computed once on the full test set and
only the set of queries is resampled, so an interval says how much the number depends on which
videos were chosen as queries, not on which distractors were in the pool.

The metrics package stands alone (numpy only here); ``vrlib.studies.toolkit`` has its own
bootstrap over seeds and runs, which evaluation must not depend on.
"""

from __future__ import annotations

import numpy as np

from vrlib.metrics.protocol import MEDIANS, RECALL_AT

DEFAULT_SAMPLES = 1000
_BLOCK = 1 << 22  # bootstrap weights per block when computing medians


def cluster_bootstrap(
    rank: np.ndarray,
    clusters: np.ndarray,
    median: str = "mean_of_middle",
    hits: np.ndarray | None = None,
    samples: int = DEFAULT_SAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of R@K, MdR and MnR over ``samples`` cluster-resampled query sets.

    Args:
        rank: ``(n,)`` 1-based ranks of the queries (from :func:`vrlib.metrics.ranks`).
        clusters: ``(n,)`` the cluster of each query (t2v: the caption's video; v2t: the video).
        median: the median rule of :func:`vrlib.metrics.summarize` for MdR.
        hits: optional ``(n, len(RECALL_AT))`` probabilities of rank <= K (``ties="mean"``).
        samples: bootstrap draws.
        level: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
        seed: the draws' seed (the same seed gives the same interval).

    Returns:
        ``{"R@1": [low, high], ..., "MdR": [low, high], "MnR": [low, high]}``.
    """
    rank = np.asarray(rank, dtype=np.float64)
    clusters = np.asarray(clusters)
    if rank.ndim != 1 or rank.size == 0 or clusters.shape != rank.shape:
        raise ValueError(
            f"rank and clusters must be non-empty (n,) arrays; got {rank.shape}, {clusters.shape}"
        )
    if median not in MEDIANS:
        raise ValueError(f"median={median!r}; valid: {', '.join(MEDIANS)}")
    if not 0 < level < 1 or int(samples) < 1:
        raise ValueError(f"need 0 < level < 1 and samples >= 1; got {level}, {samples}")
    if hits is None:
        hits = rank[:, None] <= np.asarray(RECALL_AT)[None, :]  # (n, len(RECALL_AT))
    _, cid = np.unique(clusters, return_inverse=True)
    groups = int(cid.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(groups, np.full(groups, 1.0 / groups), size=int(samples))  # (B, G)
    size = counts @ np.bincount(cid, minlength=groups)  # (B,) queries per draw
    stats: dict[str, np.ndarray] = {}
    for j, k in enumerate(RECALL_AT):
        per_cluster = np.bincount(cid, weights=np.asarray(hits, np.float64)[:, j], minlength=groups)
        stats[f"R@{k}"] = 100.0 * (counts @ per_cluster) / size
    stats["MdR"] = _weighted_medians(rank, cid, counts, median)
    stats["MnR"] = (counts @ np.bincount(cid, weights=rank, minlength=groups)) / size
    tail = 100 * (1 - level) / 2
    return {m: [float(v) for v in np.percentile(s, [tail, 100 - tail])] for m, s in stats.items()}


def _weighted_medians(
    rank: np.ndarray, cid: np.ndarray, counts: np.ndarray, median: str
) -> np.ndarray:
    """The median of each draw: every query repeated as often as its cluster was drawn, ``(B,)``."""
    order = np.argsort(rank, kind="stable")
    sorted_rank, sorted_cid = rank[order], cid[order]
    out = np.empty(len(counts))
    step = max(1, _BLOCK // rank.size)
    for start in range(0, len(counts), step):
        cum = np.cumsum(counts[start : start + step][:, sorted_cid], axis=1)  # (b, n)
        total = cum[:, -1]

        def at(position: np.ndarray, cum: np.ndarray = cum) -> np.ndarray:
            return sorted_rank[(cum > position[:, None]).argmax(axis=1)]  # 0-based position

        low = at((total - 1) // 2)
        out[start : start + step] = low if median == "lower_middle" else (low + at(total // 2)) / 2
    return out
