"""The statistical figures of the study reports, drawn with seaborn: claims and seed spreads.

Why one module: studies 02-04 each decide a paper's claims by a bootstrap interval and train each
setting over several seeds, and a reader should read those figures the same way in every report.
Tables stay the record (CSV/Markdown); these figures are how the numbers are seen at a glance.

* :func:`claims_figure` -- a point-range plot: each claim's measured difference (better minus
  worse) as a dot with its bootstrap interval, coloured by the verdict, the paper's difference as
  a grey cross where it has one, and 0 (no difference) dotted. Each study turns an interval into
  its verdict by its own rule (a "beats" claim wants the interval above 0, a "reaches" claim only
  not below it; see its reading); the colour shows that verdict. Intervals come from
  ``vrlib.studies.toolkit`` (precomputed), so the plot draws them with ``seaborn.objects``
  (``Range``) rather than letting seaborn resample.
* :func:`seeds_figure` -- every seed's value of a metric per setting (dots) with the mean and
  one standard deviation over seeds (black): the spread behind a table's ``±``.

Each function returns a matplotlib ``Figure`` for ``StudyOutputs.figure``; seaborn's look is
applied inside ``seaborn.axes_style``, so no global matplotlib state changes.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

#: The verdict words of ``toolkit.compare``/``paired_bootstrap`` and their colours; any other
#: verdict gets a colour of seaborn's default palette.
VERDICT_COLOURS = {
    "holds": "tab:green",
    "within noise": "tab:gray",
    "reversed": "tab:red",
    "does not hold": "tab:red",
}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """seaborn's white grid, and quiet about its own pandas deprecation (not the reader's business)."""
    import seaborn as sns

    with sns.axes_style("whitegrid"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The copy keyword is deprecated")
        yield


def _frame(rows):
    import pandas as pd

    return rows.reset_index(drop=True) if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)


def _colours(verdicts: Sequence[str]) -> dict[str, Any]:
    import seaborn as sns

    levels = list(dict.fromkeys(verdicts))
    others = iter(sns.color_palette(n_colors=max(1, len(levels))))
    return {v: VERDICT_COLOURS.get(v) or next(others) for v in levels}


def claims_figure(
    claims, *, diff: str, lo: str, hi: str, paper: str | None = None, label: str = "claim",
    title: str = "", unit: str = "points",
):  # fmt: skip
    """Point-range plot of claims: difference, bootstrap interval, verdict (see the module doc).

    Args:
        claims: rows (dicts or a DataFrame) with ``label``, ``diff``, ``lo``, ``hi`` and
            ``verdict`` columns (studies name them differently, hence the arguments).
        diff, lo, hi: columns of the measured difference and its interval.
        paper: column of the paper's difference (NaN or missing where the paper has none).
        label: column that names each claim (one row of the plot each, in the given order).
        title, unit: the axis title and the unit of the difference.
    """
    import matplotlib.pyplot as plt
    import seaborn.objects as so

    df = _frame(claims)
    if df.empty:
        raise ValueError("claims_figure: no claims to plot")
    missing = {label, diff, lo, hi, "verdict"} - set(df.columns)
    if missing:
        raise ValueError(
            f"claims_figure: columns {sorted(missing)} missing; have {list(df.columns)}"
        )
    with _style():
        fig = plt.figure(figsize=(9, 0.32 * len(df) + 1.4))
        plot = (
            so.Plot(df, y=label, x=diff, xmin=lo, xmax=hi, color="verdict")
            .add(so.Range(linewidth=2))
            .add(so.Dot(pointsize=6))
            .scale(color=_colours(df["verdict"].tolist()))
            .label(x=f"difference, better minus worse ({unit}); bar = 95% bootstrap interval", y="", title=title)
        )  # fmt: skip
        if paper is not None and paper in df and df[paper].notna().any():
            plot = plot.add(so.Dot(marker="x", color="0.4", pointsize=7), x=paper, xmin=None, xmax=None, color=None)  # fmt: skip
        plot.on(fig).plot()
        ax = fig.axes[0]
        ax.axvline(0, color="black", linewidth=0.8, linestyle=":")
        for legend in fig.legends:  # beside the plot, not over its rows
            legend.set_loc("center left")
            legend.set_bbox_to_anchor((1.0, 0.5), transform=fig.transFigure)
        if paper is not None:
            ax.text(1.0, 1.0, "x = paper's difference", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)  # fmt: skip
    return fig


def seeds_figure(rows, *, metric: str, setting: str = "setting", title: str = ""):
    """Each seed's ``metric`` per ``setting`` (dots) with mean ± one sd over seeds (black)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = _frame(rows)
    missing = {setting, metric} - set(df.columns)
    if df.empty or missing:
        raise ValueError(
            f"seeds_figure: need rows with {setting!r} and {metric!r}; have {list(df.columns)}"
        )
    with _style():
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * df[setting].nunique() + 2), 3.6))
        sns.stripplot(
            df, x=setting, y=metric, ax=ax, color="tab:blue", alpha=0.6, jitter=0.15, size=5
        )
        sns.pointplot(
            df, x=setting, y=metric, ax=ax, errorbar="sd", color="black", linestyle="none",
            marker="D", markersize=4, capsize=0.2, err_kws={"linewidth": 1.2},
        )  # fmt: skip
        n_seeds = df.groupby(setting, sort=False)[metric].size()
        ax.set(
            xlabel="", title=title or f"{metric}: each seed (dots), mean ± sd over seeds (black)"
        )
        ax.tick_params(axis="x", rotation=60, labelsize=8)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
        if n_seeds.max() < 2:
            ax.text(0.0, 1.0, "one seed: no spread", transform=ax.transAxes, va="bottom", fontsize=8)  # fmt: skip
        fig.tight_layout()
    return fig
