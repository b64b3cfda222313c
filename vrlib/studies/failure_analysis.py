"""Study 05 — failure analysis (Portillo-Quintero et al. 2021, §3.6).

Which captions does a zero-shot model rank worst, and why: rank against video length (their
Figure 1), the worst-ranked captions with frame strips, the share of ``audio`` captions (about
sound, which no frame shows) among the worst, R@1 per caption tag and per number of shots. The breakdowns live in ``vrlib.analysis``;
the reading, computed from them, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams, known_aggregation
from vrlib.studies.toolkit import relation


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
            ``length_bin``, ``n``, ``median_rank`` and ``r_at_1``. The trend is read from
            these bins, not from the correlation alone: a rank correlation over all captions
            can be near 0 while the median rank per bin moves a lot.
    """
    worst, overall = audio["share_worst_%"], audio["share_all_%"]
    over = relation(worst, overall, above="over", below="not over", within="not over")
    text = (
        f"Audio captions are {worst:.0f}% of the {worst_k} worst-ranked captions vs "
        f"{overall:.0f}% of all captions ({over}-represented, as the paper observed on MSR-VTT). "
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
            f"{first['r_at_1']:.0f}% in the shortest bin ({first['length_bin']}, "
            f"{first['n']} captions) vs {last['median_rank']:g} and {last['r_at_1']:.0f}% in the "
            f"longest ({last['length_bin']}, {last['n']}): {trend} here "
            f"(medians across bins: {medians}; "
            f"Spearman over all captions {spearman:.2f}). "
        )
    else:
        text += f"Spearman correlation of video length and rank: {spearman:.2f}. "
    return text + (
        "The paper saw no clear trend on MSR-VTT, whose videos are at most 32 s; in this world "
        "longer videos have more shots."
    )
