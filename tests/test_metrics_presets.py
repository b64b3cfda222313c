"""Named protocol presets against small re-implementations of each released evaluation code.

Each preset must give the released code's numbers on tie-free matrices (continuous random
scores). The CLIP4Clip / CLIP2Video and CLIP_benchmark references are the ones of
test_metrics_reference.py; Collaborative Experts (= Frozen in Time), the Portillo-Quintero
notebook (k-means, best centroid) and MMEB's hit@1 are re-implemented here. With ties the
presets use the expected rank of a random tie-break, and the released codes' known errors are
checked to be what the card says they are.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_metrics_reference import (
    continuous_problem,
    pick,
    ref_clip_benchmark_recall,
    ref_compute_metrics,
    ref_group_tensor,
    ref_tensor_text_to_video_metrics,
    ref_tensor_video_to_text_sim,
)

from vrlib.metrics import PRESETS, cluster_bootstrap, evaluate, evaluate_protocol, ranks

KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR")


def ref_ce_t2v_metrics(sims: np.ndarray) -> dict[str, float]:
    """Collaborative Experts ``t2v_metrics`` (break_ties="averaging"): queries ordered video by
    video, ``num_queries // num_vids`` captions each; the rank is the mean tied position of the
    ground-truth score in the sorted row; R@K counts ``cols < K``, R@1 ``cols == 0``."""
    num_queries, num_vids = sims.shape
    dists = -sims
    sorted_dists = np.sort(dists, axis=1)
    per_video = num_queries // num_vids
    gt = np.array([dists[q, q // per_video] for q in range(num_queries)])[:, None]
    locs = np.argwhere(sorted_dists - gt == 0)
    cols = np.array([locs[locs[:, 0] == q, 1].mean() for q in range(num_queries)])
    return ref_cols2metrics(cols)


def ref_ce_v2t_metrics(sims: np.ndarray) -> dict[str, float]:
    """Collaborative Experts ``v2t_metrics``: a video's rank is the smallest (averaged) position
    of any of its captions among all captions."""
    sims = sims.T
    num_vids, num_caps = sims.shape
    per_video = num_caps // num_vids
    out = []
    for v in range(num_vids):
        row = -sims[v]
        sorted_row = np.sort(row)
        out.append(
            min(
                np.where(sorted_row - row[j] == 0)[0].mean()
                for j in range(v * per_video, (v + 1) * per_video)
            )
        )
    return ref_cols2metrics(np.array(out))


def ref_cols2metrics(cols: np.ndarray) -> dict[str, float]:
    n = len(cols)
    return {
        "R@1": 100 * float(np.sum(cols == 0)) / n,
        "R@5": 100 * float(np.sum(cols < 5)) / n,
        "R@10": 100 * float(np.sum(cols < 10)) / n,
        "MdR": float(np.median(cols) + 1),
        "MnR": float(np.mean(cols) + 1),
    }


def ref_mmeb_hit1(scores: np.ndarray, positive: np.ndarray) -> float:
    """MMEB hit@1: the candidate ranked first (argmax) is a positive of the query."""
    return 100 * float(np.mean(positive[np.arange(len(scores)), scores.argmax(1)]))


def video_ordered_problem(seed: int, num_v: int = 30, per_video: int = 3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(num_v * per_video, num_v)), np.repeat(np.arange(num_v), per_video)


@pytest.mark.parametrize("seed", range(4))
def test_clip4clip_one_caption_is_compute_metrics_both_ways(seed):
    sim = np.random.default_rng(seed).normal(size=(40, 40))
    ours = evaluate_protocol(sim, np.arange(40), "clip4clip")
    assert pick(ours["t2v"], KEYS) == pytest.approx(ref_compute_metrics(sim))
    assert pick(ours["v2t"], KEYS) == pytest.approx(ref_compute_metrics(sim.T))


@pytest.mark.parametrize("seed", range(4))
def test_clip4clip_multi_caption_mixes_medians_in_one_call(seed):
    sim, labels = continuous_problem(seed)
    tensor = ref_group_tensor(sim, labels)
    ours = evaluate_protocol(sim, labels, "clip4clip")
    t2v = ref_tensor_text_to_video_metrics(tensor)
    assert pick(ours["t2v"], t2v) == pytest.approx(t2v)
    v2t = ref_compute_metrics(ref_tensor_video_to_text_sim(tensor))
    assert pick(ours["v2t"], v2t) == pytest.approx(v2t)
    assert ours["protocol"]["median_used"] == {"t2v": "lower_middle", "v2t": "mean_of_middle"}


@pytest.mark.parametrize("seed", range(4))
def test_frozen_equals_collaborative_experts(seed):
    sim, labels = video_ordered_problem(seed)
    ours = evaluate_protocol(sim, labels, "frozen")
    assert pick(ours["t2v"], KEYS) == pytest.approx(ref_ce_t2v_metrics(sim))
    assert pick(ours["v2t"], KEYS) == pytest.approx(ref_ce_v2t_metrics(sim))


@pytest.mark.parametrize("seed", range(4))
def test_clip_benchmark_recalls(seed):
    sim, labels = continuous_problem(seed)
    positive = torch.zeros(sim.shape, dtype=torch.bool)
    positive[torch.arange(len(labels)), torch.from_numpy(labels)] = True
    for c2v in (labels, positive.numpy()):
        ours = evaluate_protocol(sim, c2v, "clip_benchmark")
        for k in (1, 5, 10):
            scores = torch.from_numpy(sim)
            assert ours["t2v"][f"R@{k}"] == pytest.approx(
                ref_clip_benchmark_recall(scores, positive, k)
            )
            assert ours["v2t"][f"R@{k}"] == pytest.approx(
                ref_clip_benchmark_recall(scores.T, positive.T, k)
            )


@pytest.mark.parametrize("seed", range(4))
def test_portillo_scores_the_best_centroid(seed):
    rng = np.random.default_rng(seed)
    sim, labels = continuous_problem(seed)
    centroids = sim[..., None] + rng.normal(scale=0.5, size=(*sim.shape, 4))  # (C, V, k)
    best = centroids.max(2)
    ours = evaluate_protocol(centroids, labels, "portillo")
    tensor = ref_group_tensor(best, labels)
    t2v = ref_tensor_text_to_video_metrics(tensor)
    assert pick(ours["t2v"], t2v) == pytest.approx(t2v)
    v2t = ref_compute_metrics(ref_tensor_video_to_text_sim(tensor))
    assert pick(ours["v2t"], v2t) == pytest.approx(v2t)


@pytest.mark.parametrize("seed", range(4))
def test_mmeb_hit_at_1(seed):
    sim, labels = continuous_problem(seed)
    positive = np.zeros(sim.shape, dtype=bool)
    positive[np.arange(len(labels)), labels] = True
    ours = evaluate_protocol(sim, labels, "mmeb")
    assert ours["t2v"]["R@1"] == pytest.approx(ref_mmeb_hit1(sim, positive))
    assert ours["v2t"]["R@1"] == pytest.approx(ref_mmeb_hit1(sim.T, positive.T))
    assert ours["protocol"]["preset"]["reports"] == ["R@1"]


def test_ties_use_the_expected_rank_where_released_codes_err():
    """compute_metrics counts a query tied with t negatives t + 1 times; CE's averaging counts
    a fractional rank 5.5 within R@5 but 1.5 outside R@1. The presets use the expected rank."""
    sim = np.eye(4)
    sim[0, 1] = 1.0  # query 0 ties its own video with one negative
    ref = ref_compute_metrics(sim)
    released_queries = 5  # np.where finds two positions for query 0
    assert ref["R@1"] == pytest.approx(100 * 4 / released_queries)
    ours = evaluate_protocol(sim, np.arange(4), "clip4clip")["t2v"]
    assert ours["R@1"] == pytest.approx(100 * (3 + 0.5) / 4)
    assert ours["MnR"] == pytest.approx((1.5 + 3) / 4)
    ce = ref_ce_t2v_metrics(sim)
    assert ce["R@1"] == 75.0 and ce["MnR"] == pytest.approx(ours["MnR"])
    for name in PRESETS:
        assert PRESETS[name].ties == "mean" and PRESETS[name].released_ties


def test_dsl_is_opt_in_and_recorded():
    sim, labels = continuous_problem(0)
    plain = evaluate_protocol(sim, labels, "frozen")
    dsl = evaluate_protocol(sim, labels, "frozen", dsl=True)
    assert plain["protocol"]["preset"]["dsl"] is False and dsl["protocol"]["preset"]["dsl"] is True
    assert dsl["t2v"] == evaluate(sim, labels, ties="mean", dsl=True)["t2v"]


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="clip4clip.*frozen.*clip_benchmark.*portillo.*mmeb"):
        evaluate_protocol(np.eye(3), np.arange(3), "nope")


def test_cluster_bootstrap_resamples_videos_with_all_their_captions():
    sim, labels = continuous_problem(1, num_v=60)
    rank = ranks(sim, labels)
    ci = cluster_bootstrap(rank, labels, samples=300, seed=0)
    point = evaluate(sim, labels)["t2v"]
    for metric in ("R@1", "R@5", "R@10", "MdR", "MnR"):
        low, high = ci[metric]
        assert low <= point[metric] <= high, metric
    assert ci == cluster_bootstrap(rank, labels, samples=300, seed=0)
    # a cluster's queries move together: one cluster holding every query has zero width
    assert cluster_bootstrap(rank, np.zeros_like(labels), samples=50)["MnR"][0] == pytest.approx(
        point["MnR"]
    )
    with pytest.raises(ValueError, match="median"):
        cluster_bootstrap(rank, labels, median="middle")


def test_weighted_median_matches_an_explicit_resample():
    rng = np.random.default_rng(3)
    rank = rng.integers(1, 30, 25).astype(float)
    clusters = rng.integers(0, 8, 25)
    from vrlib.metrics.bootstrap import _weighted_medians

    _, cid = np.unique(clusters, return_inverse=True)
    counts = rng.multinomial(cid.max() + 1, np.full(cid.max() + 1, 1 / (cid.max() + 1)), size=20)
    for rule in ("mean_of_middle", "lower_middle"):
        got = _weighted_medians(rank, cid, counts, rule)
        for b in range(20):
            sample = np.sort(np.repeat(rank, counts[b][cid]))
            want = np.median(sample) if rule == "mean_of_middle" else sample[(len(sample) - 1) // 2]
            assert got[b] == want


def test_the_portillo_preset_counts_medians_as_its_all_caption_figures_were_counted():
    """Portillo-Quintero's notebook ranks all-caption T2V with tensor_text_to_video_metrics
    (torch.median: the lower middle) and V2T with rank_at_k_precomputed (the mean of the middle)."""
    from vrlib.metrics.protocol import PRESETS
    from vrlib.papers import PAPER_FIGURES

    rows = [
        r for rows in PAPER_FIGURES.values() for r in rows
        if r["source"].startswith("Portillo-Quintero 2021, Table 2") and r["split"] == "test-all-captions"
    ]  # fmt: skip
    assert {r["direction"] for r in rows} == {"t2v", "v2t"}
    for r in rows:
        assert r["protocol"]["median"] == PRESETS["portillo"].median[r["direction"]]
