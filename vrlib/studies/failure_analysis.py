"""Study 05 — failure analysis (Portillo-Quintero et al. 2021, §3.6).

Which captions does a zero-shot model rank worst, and why: rank against video length (their
Figure 1), the worst-ranked captions with frame strips, the share of sound-only captions among
the worst, R@1 per caption tag and per number of shots. The breakdowns live in ``vrlib.analysis``;
the reading, computed from them, here.
"""

from __future__ import annotations

from pydantic import Field

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams
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
    worst_k: int = Field(20, gt=0)
    length_bins: int = Field(5, gt=0)
    strip_frames: int = Field(6, gt=0)


def reading(audio: dict[str, float], spearman: float, worst_k: int) -> str:
    """The study's reading, computed from the audio-tag shares and the length/rank correlation.

    Args:
        audio: ``vrlib.analysis.tag_share(df, "audio", worst_k)``.
        spearman: ``vrlib.analysis.length_rank_correlation(df)``.
    """
    worst, overall = audio["share_worst_%"], audio["share_all_%"]
    over = relation(worst, overall, above="over", below="not over", within="not over")
    return (
        f"Sound-only captions are {worst:.0f}% of the {worst_k} worst-ranked captions vs "
        f"{overall:.0f}% of all captions ({over}-represented, as the paper observed on MSR-VTT). "
        f"Spearman correlation of video length and rank: {spearman:.2f} (the paper saw no clear "
        f"trend on MSR-VTT, whose videos are at most 32 s; in this world longer videos have more "
        f"shots)."
    )
