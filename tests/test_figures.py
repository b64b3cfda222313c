"""The shared statistical figures (seaborn): claims as point-ranges, seeds as dots with mean ± sd."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection

from vrlib.studies.figures import claims_figure, seeds_figure

CLAIMS = pd.DataFrame(
    {
        "claim": ["a beats b", "c beats d", "e beats f"],
        "ours diff": [2.0, -1.0, 0.5],
        "CI lo": [0.5, -3.0, -9.0],
        "CI hi": [3.5, 0.2, 12.0],
        "paper diff": [1.0, np.nan, 2.0],
        "verdict": ["holds", "within noise", "within noise"],
    }
)


def test_claims_figure_draws_one_range_per_claim_in_order():
    fig = claims_figure(CLAIMS, diff="ours diff", lo="CI lo", hi="CI hi", paper="paper diff")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == CLAIMS["claim"].tolist()
    ranges = [
        seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()
    ]
    spans = sorted((float(s[:, 0].min()), float(s[:, 0].max())) for s in ranges if len(s) == 2)
    assert spans == sorted(zip(CLAIMS["CI lo"], CLAIMS["CI hi"], strict=True))
    x_min, x_max = ax.get_xlim()
    assert x_min <= CLAIMS["CI lo"].min() and x_max >= CLAIMS["CI hi"].max()
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    centres = sorted(float(x) for c in dots for x, _ in c.get_offsets())
    expected = sorted([*CLAIMS["ours diff"], *CLAIMS["paper diff"].dropna()])
    assert centres == pytest.approx(expected)  # our dots and the paper's crosses
    assert fig.legends and {t.get_text() for t in fig.legends[0].get_texts()} >= {
        "holds",
        "within noise",
    }


def test_claims_figure_names_missing_columns():
    with pytest.raises(ValueError, match=r"\['ci_low'\] missing"):
        claims_figure(CLAIMS, diff="ours diff", lo="ci_low", hi="CI hi")
    with pytest.raises(ValueError, match="no claims"):
        claims_figure([], diff="d", lo="l", hi="h")


def test_seeds_figure_shows_every_seed_and_the_mean_and_sd():
    rows = pd.DataFrame(
        {
            "setting": ["a", "a", "a", "b", "b"],
            "seed": [0, 1, 2, 0, 1],
            "R@1": [1.0, 2.0, 6.0, 4.0, 4.0],
        }
    )
    fig = seeds_figure(rows, metric="R@1")
    ax = fig.axes[0]
    seeds = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert sorted(seeds[:, 1].tolist()) == sorted(rows["R@1"].tolist())  # every seed a dot
    means = [line.get_ydata() for line in ax.lines if line.get_marker() == "D"]
    assert len(means) == 1 and list(means[0]) == pytest.approx([3.0, 4.0])
    bars = [line.get_ydata() for line in ax.lines if line.get_marker() in (None, "None", "")]
    spans = sorted((float(np.nanmin(y)), float(np.nanmax(y))) for y in bars)  # one bar + caps each
    sd_a = float(np.std([1.0, 2.0, 6.0], ddof=1))
    assert np.allclose(spans, sorted([(3.0 - sd_a, 3.0 + sd_a), (4.0, 4.0)]))
    with pytest.raises(ValueError, match="'t2v R@1'"):
        seeds_figure(rows, metric="t2v R@1")
