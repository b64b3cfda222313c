"""Study 05 — failure analysis (Portillo-Quintero et al. 2021, §3.6).

Which captions does a zero-shot model rank worst, and why: rank against video length (their
Figure 1), the worst-ranked captions with frame strips, the share of sound-only captions among
the worst, R@1 per caption tag and per number of shots. The functions live in ``vrlib.analysis``.
"""

from __future__ import annotations

from pydantic import Field

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams


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
