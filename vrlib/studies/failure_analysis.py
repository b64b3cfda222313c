"""Study 05 — failure analysis (Portillo-Quintero et al. 2021, §3.6).

Which captions does a zero-shot model rank worst, and why: rank against video length (their
Figure 1), the worst-ranked captions with frame strips, the share of ``audio`` captions (about
sound, which no frame shows) among the worst, R@1 per caption tag and per number of shots. The
breakdowns live in ``vrlib.analysis``; the reading, computed from them, here. R@1 per length bin
carries a cluster-bootstrap interval (videos with all their captions resampled,
``toolkit.cluster_bootstrap``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams, known_aggregation
from vrlib.studies.toolkit import cluster_bootstrap, relation


@register_study(
    "failure_analysis",
    "05_failure_analysis.ipynb",
    "05 — Failure analysis (Portillo-Quintero 2021 §3.6)",
)
class FailureParams(FeatureStudyParams):
    """Parameters of study 05 (``parameters/failure_analysis/*.yaml``)."""

    aggregation: str = "mean"
    split: str = "test"

    @field_validator("aggregation")
    @classmethod
    def _registered(cls, name: str) -> str:
        return known_aggregation(name)

    def split_keys(self) -> dict[str, str]:
        return {"split": self.split}

    worst_k: int = Field(20, gt=0)
    length_bins: int = Field(5, gt=0)
    strip_frames: int = Field(6, gt=0)
    n_boot: int = Field(1000, ge=100)


def length_bins_with_intervals(df: Any, bins: int, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """``vrlib.analysis.rank_vs_length`` rows (``length_bin`` as text) with ``r_at_1_lo`` /
    ``r_at_1_hi``: a 95% cluster-bootstrap interval of each bin's R@1 over its videos.

    Args:
        df: ``vrlib.analysis.caption_frame`` (``duration``, ``rank``, ``video_index``).
    """
    import pandas as pd

    from vrlib.analysis import rank_vs_length

    rows = rank_vs_length(df, bins=bins).to_dict("records")
    binned = pd.cut(df["duration"], bins=bins).astype(str)
    for row in rows:
        row["length_bin"] = str(row["length_bin"])
        part = df[binned == row["length_bin"]]
        ci = cluster_bootstrap(100.0 * (part["rank"].to_numpy() <= 1), part["video_index"].to_numpy(),
                               n_boot=n_boot, seed=seed)  # fmt: skip
        row["r_at_1_lo"], row["r_at_1_hi"], row["videos"] = ci["lo"], ci["hi"], ci["n_clusters"]
    return rows


def reading(
    audio: dict[str, float],
    spearman: float,
    worst_k: int,
    by_length: Sequence[dict[str, Any]] = (),
) -> str:
    """The study's reading, computed from the audio-tag shares and rank against video length.

    Args:
        audio: ``vrlib.analysis.tag_share(df, "audio", worst_k)``.
        spearman: ``vrlib.analysis.length_rank_correlation(df)``.
        by_length: rows of ``vrlib.analysis.rank_vs_length`` (shortest bin first), with
            ``length_bin``, ``n``, ``median_rank`` and ``r_at_1`` (and, from
            ``length_bins_with_intervals``, ``r_at_1_lo``/``_hi``). The trend is read from
            these bins, not from the correlation alone: a rank correlation over all captions
            can be near 0 while the median rank per bin moves a lot.
    """
    worst, overall = audio["share_worst_%"], audio["share_all_%"]
    over = relation(worst, overall, above="over", below="not over", within="not over")
    paper = "as the paper observed" if over == "over" else "unlike what the paper observed"
    text = (
        f"Audio captions are {worst:.0f}% of the {worst_k} worst-ranked captions vs "
        f"{overall:.0f}% of all captions ({over}-represented, {paper} on MSR-VTT). "
    )
    bins = [b for b in by_length if b["n"] > 0]
    if len(bins) >= 2:
        first, last = bins[0], bins[-1]
        medians = ", ".join(f"{b['median_rank']:g}" for b in bins)
        trend = relation(
            last["median_rank"], first["median_rank"],
            above="longer videos rank worse", below="longer videos rank better",
            within="no trend in median rank",
        )  # fmt: skip
        text += (
            f"Rank against video length, by bin: median rank {first['median_rank']:g} and R@1 "
            f"{first['r_at_1']:.0f}%{_ci(first)} in the shortest bin ({first['length_bin']}, "
            f"{first['n']} captions) vs {last['median_rank']:g} and {last['r_at_1']:.0f}%{_ci(last)} "
            f"in the longest ({last['length_bin']}, {last['n']}): {trend} here "
            f"(medians across bins: {medians}; "
            f"Spearman over all captions {spearman:.2f}). "
        )
    else:
        text += f"Spearman correlation of video length and rank: {spearman:.2f}. "
    return text + (
        "The paper saw no clear trend on MSR-VTT, whose videos are at most 32 s; in this world "
        "longer videos have more shots."
    )


def _ci(row: dict[str, Any]) -> str:
    """`` [lo, hi]`` of a bin's R@1 (cluster bootstrap over its videos) where it was computed."""
    if "r_at_1_lo" not in row:
        return ""
    return f" [{row['r_at_1_lo']:.0f}, {row['r_at_1_hi']:.0f}]"


def reading_from_metrics(doc: dict[str, Any]) -> str:
    """The reading again, from a report's metrics.json alone (what the notebook wrote)."""
    return reading(doc["audio_share"], doc["length_rank_spearman"], doc["params"]["worst_k"],
                   doc.get("rank_by_length", ()))  # fmt: skip
