"""Readings: their comparison words follow the numbers they are given, also when the numbers go
the other way, and each committed report's reading is rebuilt from its metrics.json alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrlib.studies import failure_analysis as fa
from vrlib.studies import rebuild_reading
from vrlib.studies import zero_shot as zs

REPORTS = Path(__file__).resolve().parents[1] / "reports"
STUDIES_WITH_READINGS = (
    "zero_shot_aggregation", "temporal_ablation", "caption_selection", "curriculum",
    "failure_analysis",
)  # fmt: skip


def _zero_shot_rows(params, mean, single, kmeans, max_sim):
    values = {"single": single, "mean": mean}
    values |= {f"kmeans-k{k}-min_rank": kmeans + k / 100 for k in params.kmeans_k}
    values |= {f"kmeans-k{k}-max_sim": max_sim for k in params.kmeans_k}
    explore = [
        {"setting": s, "split": params.explore_split, "direction": "t2v", "R@1": values[s]}
        for s in params.settings()
    ]
    split = f"{params.confirm_split}-all-captions"
    confirm = [
        {"setting": "mean", "split": split, "direction": "t2v", "R@1": 11.0},
        {"setting": "mean", "split": split, "direction": "v2t", "R@1": 22.0},
    ]
    return explore, confirm


def test_zero_shot_reading_words_follow_the_numbers():
    p = zs.ZeroShotParams(kmeans_k=[2, 3])
    explore, confirm = _zero_shot_rows(p, mean=30.0, single=20.0, kmeans=40.0, max_sim=31.0)
    text = zs.reading(p, explore, confirm, "kmeans-k3-min_rank", "all_captions")
    assert "mean (30.0 R@1) beats the single frame at 1 s (20.0); the paper: 35.4 vs 24.9." in text
    assert "from 40.0 (k=2) to 40.0 (k=3), best kmeans-k3-min_rank above mean" in text
    assert "the best k gives 31.0, not above mean" in text
    assert (
        "V2T 22.0 vs T2V 11.0 R@1 (paper, MSR-VTT Full: 40.3 vs 21.4; its V2T ranks caption" in text
    )
    assert "ours all_captions)" in text
    explore, confirm = _zero_shot_rows(p, mean=20.0, single=20.0, kmeans=21.0, max_sim=25.0)
    text = zs.reading(p, explore, confirm, "kmeans-k2-min_rank", "all_captions")
    assert "mean (20.0 R@1) does not beat the single frame" in text
    assert "best kmeans-k2-min_rank within 2 points of mean" in text
    assert "the best k gives 25.0, above mean" in text
    explore, confirm = _zero_shot_rows(p, mean=20.0, single=30.0, kmeans=10.0, max_sim=5.0)
    assert "best kmeans-k2-min_rank below mean" in zs.reading(
        p, explore, confirm, "kmeans-k2-min_rank", "all_captions"
    )


def test_failure_reading_says_over_only_when_the_worst_share_is_higher():
    over = fa.reading({"share_worst_%": 40.0, "share_all_%": 5.0}, 0.123, 20)
    assert over.startswith("Audio captions are 40% of the 20 worst-ranked captions vs 5%")
    assert "(over-represented" in over and "rank: 0.12." in over
    assert "(not over-represented" in fa.reading({"share_worst_%": 5.0, "share_all_%": 5.0}, 0.0, 3)


def test_failure_reading_reads_the_length_trend_from_the_bins():
    bins = [
        {"length_bin": "(2, 4]", "n": 100, "median_rank": 4.0, "r_at_1": 30.0},
        {"length_bin": "(4, 8]", "n": 80, "median_rank": 9.0, "r_at_1": 20.0},
        {"length_bin": "(8, 12]", "n": 60, "median_rank": 17.0, "r_at_1": 13.0},
    ]
    audio = {"share_worst_%": 5.0, "share_all_%": 5.0}
    text = fa.reading(audio, 0.07, 20, bins)
    assert "median rank 4 and R@1 30% in the shortest bin ((2, 4], 100 captions)" in text
    assert "vs 17 and 13% in the longest ((8, 12], 60): longer videos rank worse" in text
    assert "Spearman over all captions 0.07" in text
    flat = [b | {"median_rank": 5.0} for b in bins]
    assert "no trend in median rank" in fa.reading(audio, 0.0, 20, flat)
    assert "longer videos rank better" in fa.reading(audio, -0.2, 20, bins[::-1])


def test_failure_reading_does_not_claim_the_papers_observation_when_the_numbers_differ():
    under = fa.reading({"share_worst_%": 2.0, "share_all_%": 9.0}, 0.0, 20)
    assert "(not over-represented, unlike what the paper observed on MSR-VTT)" in under
    assert "as the paper observed" not in under
    over = fa.reading({"share_worst_%": 30.0, "share_all_%": 9.0}, 0.0, 20)
    assert "(over-represented, as the paper observed on MSR-VTT)" in over


def test_failure_reading_gives_the_bins_cluster_intervals():
    bins = [
        {"length_bin": "(2, 4]", "n": 100, "median_rank": 4.0, "r_at_1": 30.0,
         "r_at_1_lo": 21.0, "r_at_1_hi": 39.4},
        {"length_bin": "(8, 12]", "n": 60, "median_rank": 17.0, "r_at_1": 13.0,
         "r_at_1_lo": 5.2, "r_at_1_hi": 22.0},
    ]  # fmt: skip
    text = fa.reading({"share_worst_%": 5.0, "share_all_%": 5.0}, 0.1, 20, bins)
    assert (
        "R@1 30% [21, 39] in the shortest bin" in text and "and 13% [5, 22] in the longest" in text
    )


def test_zero_shot_reading_reads_min_ranks_trend_from_the_numbers():
    p = zs.ZeroShotParams(kmeans_k=[2, 3])
    explore, confirm = _zero_shot_rows(p, mean=30.0, single=20.0, kmeans=40.0, max_sim=31.0)
    grows = zs.reading(p, explore, confirm, "kmeans-k3-min_rank", "all_captions")
    assert "it grows with k here." in grows and "as here" not in grows
    falling = [r | {"R@1": 50.0 - r["R@1"] / 100} if r["setting"].endswith("min_rank") else r
               for r in explore]  # fmt: skip  # k=2: 49.6, k=3: 49.6 - 0.01
    text = zs.reading(p, falling, confirm, "kmeans-k2-min_rank", "all_captions")
    assert "it falls with k here." in text and "grows with k here" not in text
    level = [r | {"R@1": 40.0} if r["setting"].endswith("min_rank") else r for r in explore]
    assert "it stays level with k here." in zs.reading(p, level, confirm, "kmeans-k2-min_rank", "x")


def test_zero_shot_reading_takes_mean_vs_single_from_the_cluster_bootstrap():
    p = zs.ZeroShotParams(kmeans_k=[2, 3])
    explore, confirm = _zero_shot_rows(p, mean=30.0, single=20.0, kmeans=40.0, max_sim=31.0)
    versus = {"value": 10.0, "lo": -1.0, "hi": 21.0, "n_clusters": 48, "mdd": 15.0,
              "verdict": "within noise"}  # fmt: skip
    text = zs.reading(p, explore, confirm, "kmeans-k3-min_rank", "all_captions", versus)
    # the means differ by 10 points, but the videos do not show it: no "beats"
    assert (
        "mean (30.0 R@1) is not shown to beat the single frame at 1 s (20.0) (mean - single "
        in text
    )
    assert (
        "+10.0 [-1.0, +21.0], paired cluster bootstrap over 48 videos: within noise, MDD 15.0)"
        in text
    )
    held = zs.reading(p, explore, confirm, "kmeans-k3-min_rank", "x", versus | {"verdict": "holds"})
    assert "mean (30.0 R@1) beats the single frame" in held
    worse = versus | {"value": -3.0, "lo": -5.0, "hi": -1.0, "verdict": "reversed"}
    assert "falls below the single frame" in zs.reading(
        p, explore, confirm, "kmeans-k3-min_rank", "x", worse
    )


COMMITTED_RUNS = [
    path.relative_to(REPORTS).parent.as_posix()
    for study in STUDIES_WITH_READINGS
    for path in sorted((REPORTS / study).glob("*/metrics.json"))
]


def test_every_study_with_a_reading_has_a_committed_default_run():
    assert {run.split("/")[0] for run in COMMITTED_RUNS if run.endswith("/default")} == set(
        STUDIES_WITH_READINGS
    )


@pytest.mark.parametrize("run", COMMITTED_RUNS)
def test_each_committed_reading_is_rebuilt_from_its_metrics_json(run):
    """The reading is a function of what metrics.json keeps: no number or word comes from
    anywhere else, for the default run and every negative control. (Committed reports written
    before a reading changed fail here until the report is regenerated by the code.)"""
    path = REPORTS / run / "metrics.json"
    doc = json.loads(path.read_text())
    assert rebuild_reading(doc) == doc["reading"], f"{path}: reading differs from the rebuilt one"


def test_a_study_without_a_reading_rebuilds_none():
    assert rebuild_reading({"study": "query_browser"}) is None
