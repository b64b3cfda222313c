"""The study toolkit: rows, paper tables, seed aggregation, claims, bootstrap, reading words.

Bootstrap intervals are checked against the exact bootstrap distribution of a hand case and
against a brute-force loop over the same resamples.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vrlib.studies import toolkit as tk

# ----------------------------------------------------------------------------- rows


def test_rows_from_metrics_one_row_per_direction_in_metric_order():
    result = {
        "t2v": {"R@1": 10.0, "MdR": 3.0, "n": 4, "ignored": 1},
        "v2t": {"R@5": 20.0, "n": 2},
        "protocol": {},
    }
    rows = tk.rows_from_metrics("mean", "val", result, seed=3)
    assert rows == [
        {
            "setting": "mean",
            "split": "val",
            "direction": "t2v",
            "R@1": 10.0,
            "MdR": 3.0,
            "n": 4,
            "seed": 3,
        },
        {"setting": "mean", "split": "val", "direction": "v2t", "R@5": 20.0, "n": 2, "seed": 3},
    ]
    assert tk.rows_from_metrics("mean", "val", {"t2v": {"n": 1}})[0]["direction"] == "t2v"


def test_lookup_finds_the_matching_row_and_names_a_missing_one():
    rows = [
        {"setting": "a", "direction": "t2v", "R@1": 1.0},
        {"setting": "a", "direction": "v2t", "R@1": 2.0},
    ]
    assert tk.lookup(rows, "R@1", setting="a", direction="v2t") == 2.0
    with pytest.raises(KeyError, match="'setting': 'b'"):
        tk.lookup(rows, "R@1", setting="b")


# ----------------------------------------------------------------------------- paper beside ours


def test_beside_paper_left_joins_the_papers_figures():
    ours = [
        {"setting": "mean", "split": "val", "direction": "t2v", "R@1": 12.0, "MnR": 3.0},
        {"setting": "new", "split": "val", "direction": "t2v", "R@1": 9.0, "MnR": 5.0},
    ]
    paper = [{"source": "x", "setting": "mean", "split": "val", "direction": "t2v", "R@1": 35.4}]
    df = tk.beside_paper(
        ours,
        paper,
        on=["setting", "split", "direction"],
        metrics=["R@1", "MnR"],
        paper_metrics=["R@1"],
    )
    assert list(df.columns) == ["setting", "split", "direction", "R@1", "MnR", "paper R@1"]
    assert df["paper R@1"].iloc[0] == 35.4 and math.isnan(df["paper R@1"].iloc[1])
    empty = tk.beside_paper(ours, [], on=["setting"], metrics=["R@1"], paper_metrics=["R@1"])
    assert len(empty) == 2 and empty["paper R@1"].isna().all()


def test_paper_table_puts_mean_std_and_paper_side_by_side():
    summary = [{"setting": "a", "direction": "t2v", "n_seeds": 3, "R@1": 5.0, "R@1_std": 1.0}]
    df = tk.paper_table(
        summary, [{"setting": "a", "direction": "t2v", "R@1": 40.0}], ["a"], ["R@1"]
    )
    assert df.to_dict("records") == [
        {
            "setting": "a",
            "direction": "t2v",
            "seeds": 3,
            "R@1": 5.0,
            "R@1 ±": 1.0,
            "paper R@1": 40.0,
        }
    ]


# ----------------------------------------------------------------------------- seeds and claims


def test_aggregate_seeds_mean_and_sample_std():
    rows = [
        {"setting": "a", "split": "test", "direction": "t2v", "seed": s, "R@1": r, "n": 10}
        for s, r in ((0, 10.0), (1, 20.0), (2, 30.0))
    ] + [{"setting": "b", "split": "test", "direction": "t2v", "seed": 0, "R@1": 5.0, "n": 10}]
    out = tk.aggregate_seeds(rows)
    assert [r["setting"] for r in out] == ["a", "b"]
    a, b = out
    assert a["R@1"] == pytest.approx(20.0) and a["R@1_std"] == pytest.approx(10.0)  # ddof=1
    assert a["n_seeds"] == 3 and a["n"] == 10 and "seed_std" not in a
    assert b["R@1"] == 5.0 and b["R@1_std"] == 0.0 and b["n_seeds"] == 1


def test_aggregate_seeds_refuses_repeated_seeds_and_disagreeing_n():
    row = {"setting": "a", "split": "test", "direction": "t2v", "seed": 0, "R@1": 1.0, "n": 3}
    with pytest.raises(ValueError, match="repeated seeds"):
        tk.aggregate_seeds([row, dict(row)])
    with pytest.raises(ValueError, match="disagree on n"):
        tk.aggregate_seeds([row, dict(row, seed=1, n=4)])


def test_compare_verdicts():
    def rows(name, values):
        mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
        return {"setting": name, "direction": "t2v", "R@1": mean, "R@1_std": std, "n_seeds": 3}

    summary = [rows("a", [50, 51, 52]), rows("b", [40, 41, 42]), rows("c", [49, 52, 53])]
    assert tk.compare(summary, "a", "b", "t2v")["verdict"] == "holds"
    assert tk.compare(summary, "b", "a", "t2v")["verdict"] == "reversed"
    assert tk.compare(summary, "a", "c", "t2v")["verdict"] == "within noise"
    assert tk.compare(summary, "a", "missing", "t2v") is None


def test_compare_with_one_seed_gives_no_verdict():
    one = [
        {"setting": "a", "direction": "t2v", "R@1": 2.0, "R@1_std": 0.0, "n_seeds": 1},
        {"setting": "b", "direction": "t2v", "R@1": 1.0, "R@1_std": 0.0, "n_seeds": 1},
    ]
    assert tk.compare(one, "a", "b", "t2v")["verdict"] == "one seed, no error bar"


def test_best_setting_picks_the_highest_mean():
    summary = [
        {"setting": "tab-k4", "direction": "t2v", "R@1": 3.0},
        {"setting": "tab-k5", "direction": "t2v", "R@1": 4.0},
        {"setting": "tab-k6", "direction": "v2t", "R@1": 9.0},
    ]
    assert tk.best_setting(summary, "tab-k") == "tab-k5"
    assert tk.best_setting(summary, "tab-w") is None


def test_claims_table_and_its_reading():
    def row(name, values):
        return {"setting": name, "direction": "t2v", "R@1": float(np.mean(values)),
                "R@1_std": float(np.std(values, ddof=1)), "n_seeds": len(values)}  # fmt: skip

    summary = [row("a", [50, 51, 52]), row("b", [40, 41, 42]), row("c", [49, 52, 53])]
    paper = [{"setting": s, "direction": "t2v", "R@1": v} for s, v in (("a", 45.0), ("b", 44.0))]
    claims = (
        ("a", "b", "t2v", "a beats b"),
        ("a", "c", "t2v", "a beats c"),
        ("a", "z", "t2v", "?"),
    )
    table = tk.claims_table(summary, paper, claims)
    assert [c["claim"] for c in table] == ["a beats b", "a beats c"]  # z was not run
    assert table[0]["paper diff"] == pytest.approx(1.0) and table[0]["ours diff"] == pytest.approx(
        10.0
    )
    assert math.isnan(table[1]["paper diff"])
    held, missed = tk.claims_reading(table, "the claims", "by 2 SE")
    assert held == (
        "1 of 2 of the claims hold here by 2 SE (a vs b (T2V R@1)); "
        "1 hold, 0 reversed, 1 within noise, 0 underpowered."
    )
    assert missed == "Not reproduced: a vs c (T2V R@1): within noise (-0.3)."
    assert tk.claims_reading(table[1:], "the claims", "by 2 SE") == [
        "0 of 1 of the claims hold here by 2 SE (none); "
        "0 hold, 0 reversed, 1 within noise, 0 underpowered.",
        "Not reproduced: a vs c (T2V R@1): within noise (-0.3).",
    ]


# ----------------------------------------------------------------------------- bootstrap


def _exact_bootstrap_quantile(values, q):
    """Quantile of the bootstrap distribution of the mean, by enumerating every resample."""
    n = len(values)
    means = sorted(
        np.mean([values[i] for i in idx]) for idx in itertools.product(range(n), repeat=n)
    )
    cdf = np.arange(1, len(means) + 1) / len(means)
    return means[int(np.searchsorted(cdf, q))]


def test_bootstrap_ci_matches_the_exact_bootstrap_distribution():
    # resample means of (0, 0, 3) are 0, 1, 2, 3 with probabilities 8, 12, 6, 1 / 27
    values = [0.0, 0.0, 3.0]
    for level in (0.95, 0.8):
        got = tk.bootstrap_ci(values, n_boot=20_000, level=level, seed=1)
        assert got["value"] == 1.0 and got["n"] == 3
        assert got["lo"] == _exact_bootstrap_quantile(values, (1 - level) / 2)
        assert got["hi"] == _exact_bootstrap_quantile(values, (1 + level) / 2)
    assert (got["lo"], got["hi"]) == (0.0, 2.0)  # level 0.8, by hand: cdf 8/27 > 0.1, 20/27 < 0.9


def test_bootstrap_ci_function_of_indices_equals_values_and_brute_force_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=37)
    by_values = tk.bootstrap_ci(values, n_boot=600, seed=7)
    by_function = tk.bootstrap_ci(
        statistic=lambda idx: values[idx].mean(), n_units=37, n_boot=600, seed=7
    )
    assert by_function == pytest.approx(by_values)
    brute = [values[row].mean() for block in tk.resample_indices(37, 600, 7) for row in block]
    assert len(brute) == 600
    assert by_values["lo"] == pytest.approx(np.quantile(brute, 0.025))
    assert by_values["hi"] == pytest.approx(np.quantile(brute, 0.975))
    assert by_values["value"] == pytest.approx(values.mean())
    assert by_values["lo"] < by_values["value"] < by_values["hi"]


def test_bootstrap_is_seeded_and_constant_values_give_a_point():
    values = np.arange(10.0)
    assert tk.bootstrap_ci(values, seed=3) == tk.bootstrap_ci(values, seed=3)
    assert tk.bootstrap_ci(values, seed=3) != tk.bootstrap_ci(values, seed=4)
    const = tk.bootstrap_ci([2.5] * 9, n_boot=50)
    assert const["lo"] == const["hi"] == const["value"] == 2.5


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        tk.bootstrap_ci()
    with pytest.raises(ValueError, match="at least one unit"):
        tk.bootstrap_ci([])
    with pytest.raises(ValueError, match="level"):
        tk.bootstrap_ci([1.0], level=1.0)
    with pytest.raises(ValueError, match="n_units"):
        tk.bootstrap_ci(statistic=np.mean)
    with pytest.raises(ValueError, match="n_boot"):
        tk.bootstrap_ci([1.0], n_boot=0)


def test_paired_bootstrap_verdicts():
    rng = np.random.default_rng(1)
    base = rng.normal(size=200)  # shared per-query difficulty: pairing removes it
    better = tk.paired_bootstrap(base + 0.5, base, seed=0)
    assert (
        better["verdict"] == "holds" and better["lo"] > 0 and better["value"] == pytest.approx(0.5)
    )
    assert tk.paired_bootstrap(base, base + 0.5, seed=0)["verdict"] == "reversed"
    same = tk.paired_bootstrap(base, base.copy())
    assert same["verdict"] == tk.IDENTICAL and same["lo"] == same["hi"] == 0.0
    noisy = tk.paired_bootstrap(base + rng.normal(size=200), base, seed=0)
    assert noisy["verdict"] == "within noise" and noisy["lo"] < 0 < noisy["hi"]
    with pytest.raises(ValueError, match="same units"):
        tk.paired_bootstrap([1.0, 2.0], [1.0])


# ----------------------------------------------------------------------------- reading words


def test_relation_words_follow_the_numbers():
    assert tk.relation(5.0, 2.0) == "above" and tk.relation(2.0, 5.0) == "below"
    assert tk.relation(3.0, 2.0, 2) == "within 2 points of"
    assert tk.relation(4.5, 2.0, 2) == "above" and tk.relation(-0.5, 2.0, 2) == "below"
    words = {"above": "beats", "below": "does not beat", "within": "does not beat"}
    assert tk.relation(1.0, 1.0, **words) == "does not beat"
    assert tk.relation(1.1, 1.0, **words) == "beats"
    assert tk.listing([]) == "none" and tk.listing(["a", "b"], ", ") == "a, b"
