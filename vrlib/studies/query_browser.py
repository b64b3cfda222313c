"""Study 06 — the query browser, run headless as a report.

The widget (``vrlib.browse.QueryBrowser``) is for JupyterLab; its report runs a few example
queries through the same code path and saves their ranked results, so a broken browser fails CI.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams, known_aggregation


@register_study("query_browser", "06_query_browser.ipynb", "06 — Query browser")
class BrowserParams(FeatureStudyParams):
    """Parameters of the browser notebook (``parameters/query_browser/*.yaml``)."""

    aggregation: str = "mean"
    split: str = "test"

    @field_validator("aggregation")
    @classmethod
    def _registered(cls, name: str) -> str:
        return known_aggregation(name)

    def split_keys(self) -> dict[str, str]:
        return {"split": self.split}

    top_k: int = Field(5, gt=0)
    strip_frames: int = Field(6, gt=0)
    example_queries: list[str] = Field(
        default_factory=lambda: [
            "a red circle moves to the left",
            "a small blue square grows",
            "a loud beep is heard",
        ]
    )
