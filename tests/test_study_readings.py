"""Readings of studies 01 and 05: their comparison words follow the numbers they are given."""

from __future__ import annotations

from vrlib.studies import failure_analysis as fa
from vrlib.studies import zero_shot as zs


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
