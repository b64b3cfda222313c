"""Cluster bootstrap (videos with all their captions, seeds as a level) and verdicts with margins.

Intervals are checked against exact bootstrap distributions of hand cases and against a
brute-force loop over the same draws; verdicts on constructed intervals in every direction.
"""

from __future__ import annotations

import numpy as np
import pytest

from vrlib.studies import bootstrap as bs
from vrlib.studies import toolkit as tk


def test_one_seed_without_clusters_is_the_unit_bootstrap():
    values = np.random.default_rng(0).normal(size=41)
    got = bs.cluster_bootstrap(values, n_boot=700, seed=5)
    want = bs.bootstrap_ci(values, n_boot=700, seed=5)
    for key in ("value", "lo", "hi", "tost_lo", "tost_hi", "se", "mdd"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["n_clusters"] == got["n"] == 41 and got["resampled"] == "units"


def test_cluster_bootstrap_matches_a_brute_force_loop_over_the_same_draws():
    rng = np.random.default_rng(1)
    clusters = rng.integers(0, 9, size=60)  # uneven clusters, labels not 0..G-1 in order
    clusters[clusters == 4] = 17
    values = rng.normal(size=60) + clusters
    got = bs.cluster_bootstrap(values, clusters, n_boot=300, seed=2)
    labels = np.unique(clusters)
    draws = np.random.default_rng(2).integers(0, len(labels), size=(300, len(labels)))
    brute = []
    for row in draws:  # a resample: the chosen clusters, each with all its units
        picked = np.concatenate([values[clusters == labels[g]] for g in row])
        brute.append(picked.mean())
    assert got["value"] == pytest.approx(values.mean())
    assert got["lo"] == pytest.approx(np.quantile(brute, 0.025))
    assert got["hi"] == pytest.approx(np.quantile(brute, 0.975))
    assert got["se"] == pytest.approx(np.std(brute, ddof=1))
    assert got["n_clusters"] == len(labels) and got["n"] == 60


def test_captions_that_repeat_their_video_give_the_video_level_interval():
    per_video = np.array([0.0, 0.0, 3.0, 1.0, 5.0])
    captions = np.repeat(per_video, 20)  # 20 identical captions per video
    videos = np.repeat(np.arange(5), 20)
    clustered = bs.cluster_bootstrap(captions, videos, n_boot=2000, seed=3)
    assert clustered == pytest.approx(
        bs.cluster_bootstrap(per_video, n_boot=2000, seed=3) | {"n": 100, "resampled": "clusters"}
    )
    naive = bs.bootstrap_ci(captions, n_boot=2000, seed=3)
    assert naive["hi"] - naive["lo"] < 0.5 * (clustered["hi"] - clustered["lo"])


def test_correlated_captions_widen_the_interval():
    rng = np.random.default_rng(4)
    videos = np.repeat(np.arange(60), 20)
    hits = (rng.normal(size=60)[videos] + 0.3 * rng.normal(size=1200) > 0) * 100.0
    clustered = bs.cluster_bootstrap(hits, videos, seed=0)
    naive = bs.bootstrap_ci(hits, seed=0)
    assert (clustered["hi"] - clustered["lo"]) > 2 * (naive["hi"] - naive["lo"])


def test_seeds_are_a_level_exact_distribution():
    # every unit of seed s has value c_s: resampling units changes nothing, seeds everything.
    # The mean of two seeds drawn from (0, 3) is 0, 1.5 or 3 with probability 1/4, 1/2, 1/4.
    values = np.array([[0.0] * 8, [3.0] * 8])  # (S, n)
    got = bs.cluster_bootstrap(values, np.arange(8) // 2, n_boot=4000, level=0.8, seed=0)
    assert got["value"] == 1.5 and got["n_seeds"] == 2 and got["resampled"] == "clusters and seeds"
    assert (got["lo"], got["hi"]) == (0.0, 3.0)
    one = bs.cluster_bootstrap(values.mean(0), np.arange(8) // 2, n_boot=500)
    assert one["lo"] == one["hi"] == 1.5  # averaging the seeds first hides their spread


def test_paired_cluster_bootstrap_verdicts_both_ways_and_identical_outputs():
    rng = np.random.default_rng(5)
    videos = np.repeat(np.arange(80), 5)
    base = rng.normal(size=80)[videos] + rng.normal(
        size=400
    )  # shared difficulty: pairing removes it
    better = bs.paired_cluster_bootstrap(base + 0.5, base, videos)
    assert better["verdict"] == "holds" and better["value"] == pytest.approx(0.5)
    assert bs.paired_cluster_bootstrap(base, base + 0.5, videos)["verdict"] == "reversed"
    same = bs.paired_cluster_bootstrap(np.stack([base, base]), np.stack([base, base]), videos)
    assert same["identical"] and same["verdict"] == bs.IDENTICAL != "holds"
    assert same["lo"] == same["hi"] == 0.0
    # per-seed rows differ, means agree: not identical, the seed spread decides
    shifted = bs.paired_cluster_bootstrap(np.stack([base + 1, base - 1]), base, videos)
    assert not shifted["identical"] and shifted["lo"] < 0 < shifted["hi"]
    with pytest.raises(ValueError, match="same units"):
        bs.paired_cluster_bootstrap(base, base[:-1], videos)
    with pytest.raises(ValueError, match="one label per unit"):
        bs.cluster_bootstrap(base, videos[:-1])


def test_minimum_detectable_difference_is_2_8_standard_errors():
    assert bs.minimum_detectable(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-6)
    assert bs.minimum_detectable(2.0, level=0.9) == pytest.approx(2 * (1.644854 + 0.841621), 1e-6)


def _test(lo, hi, mdd=1.0, tost=None, identical=False):
    tost_lo, tost_hi = tost or (lo, hi)
    return {"lo": lo, "hi": hi, "tost_lo": tost_lo, "tost_hi": tost_hi, "mdd": mdd,
            "identical": identical}  # fmt: skip


def test_greater_verdicts_and_underpowered_against_the_effect_looked_for():
    assert bs.decide(_test(0.1, 2.0)) == "holds"
    assert bs.decide(_test(-2.0, -0.1)) == "reversed"
    assert bs.decide(_test(-1.0, 1.0, mdd=2.8)) == "within noise"  # no effect named
    assert bs.decide(_test(-1.0, 1.0, mdd=2.8), effect=1.4) == "underpowered"
    assert bs.decide(_test(-1.0, 1.0, mdd=2.8), effect=-1.4) == "underpowered"
    assert bs.decide(_test(-1.0, 1.0, mdd=2.8), effect=5.0) == "within noise"
    assert bs.decide(_test(-1.0, 1.0, mdd=2.8), effect=float("nan")) == "within noise"
    assert bs.decide(_test(0.0, 0.0, mdd=0.0, identical=True)) == bs.IDENTICAL


def test_non_inferiority_needs_the_lower_bound_above_minus_the_margin():
    # the old rule (upper bound >= 0) called all of these "holds"
    assert bs.decide(_test(-0.9, 2.0), "not_worse", margin=1.0) == "holds"
    assert (
        bs.decide(_test(-1.5, 2.3, mdd=1.5), "not_worse", margin=1.0, effect=99) == "underpowered"
    )
    assert bs.decide(_test(-1.5, 2.3, mdd=0.5), "not_worse", margin=1.0) == "within noise"
    assert bs.decide(_test(-3.0, -1.2), "not_worse", margin=1.0) == "reversed"
    assert bs.decide(_test(0.0, 0.0, identical=True), "not_worse", margin=1.0) == bs.IDENTICAL
    with pytest.raises(ValueError, match="margin > 0"):
        bs.decide(_test(-0.5, 1.0), "not_worse")


def test_equivalence_is_two_one_sided_tests_against_the_margin():
    inside = _test(-0.9, 0.9, tost=(-0.7, 0.7))
    assert bs.decide(inside, "equivalent", margin=1.0) == "holds"
    assert bs.decide(inside, "equivalent", margin=0.5, effect=None) == "underpowered"
    assert bs.decide(_test(-0.9, 0.9, mdd=0.2, tost=(-0.7, 0.7)), "equivalent", margin=0.5) == (
        "within noise"
    )
    assert bs.decide(_test(1.2, 3.0), "equivalent", margin=1.0) == "reversed"
    assert bs.decide(_test(-3.0, -1.1), "equivalent", margin=1.0) == "reversed"
    assert bs.decide(_test(0.0, 0.0, mdd=0.0, identical=True), "equivalent", margin=1.0) == (
        bs.IDENTICAL
    )
    with pytest.raises(ValueError, match="valid: greater"):
        bs.decide(inside, "same")


def test_verdicts_are_counted_in_buckets():
    rows = [{"verdict": v} for v in ("holds", "holds", "reversed", "underpowered", bs.IDENTICAL,
                                     "within noise", "one seed, no error bar",
                                     "uninformative (learned temporal table 0.002)")]  # fmt: skip
    assert bs.count_verdicts(rows) == {"holds": 2, "reversed": 1, "within noise": 2,
                                       "underpowered": 1, "identical outputs": 1,
                                       "uninformative": 1}  # fmt: skip
    assert bs.counts_sentence(rows) == (
        "2 hold, 1 reversed, 2 within noise, 1 underpowered, "
        "1 not distinguishable (identical outputs), 1 uninformative"
    )
    assert bs.counts_sentence(rows[:1]) == "1 hold, 0 reversed, 0 within noise, 0 underpowered"


def _seed_rows(name: str, mean: float, std: float, n_seeds: int = 4) -> dict:
    return {"setting": name, "direction": "t2v", "R@1": mean, "R@1_std": std, "n_seeds": n_seeds}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_compare_at_one_and_a_half_and_two_and_a_half_standard_errors(sign):
    # se of the difference of two 4-seed means with std 2 each: sqrt(4/4 + 4/4) = sqrt(2)
    se = np.sqrt(2.0)
    for k, verdict in ((1.5, "within noise"), (2.5, "holds" if sign > 0 else "reversed")):
        summary = [_seed_rows("a", 10.0 + sign * k * se, 2.0), _seed_rows("b", 10.0, 2.0)]
        got = tk.compare(summary, "a", "b", "t2v")
        assert got["se"] == pytest.approx(se) and got["diff"] == pytest.approx(sign * k * se)
        assert got["verdict"] == verdict, (k, sign)
        assert got["mdd"] == pytest.approx(bs.minimum_detectable(se))
    # within noise on a paper effect smaller than the MDD (3.96) is underpowered
    summary = [_seed_rows("a", 10.0 + sign * 1.5 * se, 2.0), _seed_rows("b", 10.0, 2.0)]
    assert tk.compare(summary, "a", "b", "t2v", effect=1.4)["verdict"] == "underpowered"
    assert tk.compare(summary, "a", "b", "t2v", effect=6.0)["verdict"] == "within noise"


def test_compare_of_identical_runs_is_not_holds():
    summary = [_seed_rows("a", 10.0, 0.0), _seed_rows("b", 10.0, 0.0)]
    assert tk.compare(summary, "a", "b", "t2v")["verdict"] == bs.IDENTICAL


def test_paired_claims_table_resamples_the_clusters_it_is_given():
    rng = np.random.default_rng(6)
    videos = np.repeat(np.arange(30), 10)
    base = rng.normal(size=30)[videos] * 40 + 50
    per = {("a", "t2v"): base + 3 * rng.normal(size=30)[videos], ("b", "t2v"): base}
    claims = [("a", "b", "t2v", "a beats b")]
    paper = [{"setting": "a", "direction": "t2v", "R@1": 2.0}, {"setting": "b", "direction": "t2v", "R@1": 1.0}]  # fmt: skip
    by_video = tk.paired_claims_table(claims, lambda s, k: per[(s, k)], paper,
                                      clusters=lambda k: videos, n_boot=500)[0]  # fmt: skip
    by_caption = tk.paired_claims_table(claims, lambda s, k: per[(s, k)], paper, n_boot=500)[0]
    assert by_video["clusters"] == 30 and by_caption["clusters"] == 300
    assert by_video["resampled"] == "clusters" and by_caption["resampled"] == "units"
    assert by_video["CI hi"] - by_video["CI lo"] > 2 * (by_caption["CI hi"] - by_caption["CI lo"])
    assert by_video["paper diff"] == pytest.approx(1.0)
    # the paper's 1-point effect: below what 30 videos can detect, above what 300 captions "can"
    assert by_video["CI lo"] < 0 < by_video["CI hi"] and by_video["MDD"] > 1.0
    assert by_video["verdict"] == "underpowered"
    assert by_caption["MDD"] < 1.0 and by_caption["verdict"] == "within noise"
