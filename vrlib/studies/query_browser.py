"""Study 06 — the query browser, run headless as a report.

The widget (``vrlib.browse.QueryBrowser``) is for JupyterLab; its report runs a few example
queries through the same index and saves their ranked results, so a broken browser fails CI.

Two sources: a dataset split (the default: its captions can be picked and their ground-truth
rank is shown, its R@K is in the header), or ``index: PATH``, an index folder written by
``python -m vrlib index`` over one's own videos (free queries only; the encoder is the one the
manifest names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams, known_aggregation


@register_study("query_browser", "06_query_browser.ipynb", "06 — Query browser")
class BrowserParams(FeatureStudyParams):
    """Parameters of the browser notebook (``parameters/query_browser/*.yaml``)."""

    aggregation: str = "mean"
    split: str = "test"
    index: str | None = None

    top_k: int = Field(5, gt=0)
    strip_frames: int = Field(6, gt=0)
    strip_size: int = Field(96, gt=7)
    example_queries: list[str] = Field(
        default_factory=lambda: [
            "a red circle moves to the left",
            "a small blue square grows",
            "a loud beep is heard",
        ]
    )

    @field_validator("aggregation")
    @classmethod
    def _registered(cls, name: str) -> str:
        return known_aggregation(name)

    def split_keys(self) -> dict[str, str]:
        return {"split": self.split}


@dataclass
class BrowserSource:
    """What the browser shows: the index, its encoder, the dataset (or None) and its metrics."""

    index: Any
    encoder: Any
    dataset: Any = None
    result: dict | None = None

    def header_metrics(self) -> dict[str, float]:
        """R@1/5/10 of text -> video retrieval on the dataset (empty for a plain index)."""
        if not self.result:
            return {}
        t2v = self.result["t2v"]
        return {k: float(t2v[k]) for k in ("R@1", "R@5", "R@10")}


def prepare_source(p: BrowserParams) -> BrowserSource:
    """Load the encoder and build (or load) the index the browser searches."""
    from vrlib.index import VideoIndex, open_encoder

    if p.index is not None:
        index = VideoIndex.load(p.index)
        m = index.manifest
        encoder = open_encoder(m["model"], m["pretrained"], p.encoder.device)
        return BrowserSource(index.attach(encoder), encoder)

    from vrlib.aggregate import aggregate
    from vrlib.metrics import evaluate
    from vrlib.studies.common import load_encoder, prepare_split

    encoder = load_encoder(p.encoder, p.data)
    data = prepare_split(
        p.data, p.split, encoder, p.sampling, batch_size=p.encoder.batch_size, cache_dir=p.cache_dir, seed=p.seed
    )  # fmt: skip
    paths = [str(v.path) for v in data.dataset.videos]
    index = VideoIndex.from_features(
        data.features, paths, encoder, p.sampling.config(), p.aggregation, p.seed
    )
    videos = aggregate(data.features.features, p.aggregation)
    result = evaluate(data.text @ videos.T, data.caption_to_video)
    return BrowserSource(index.attach(encoder), encoder, data.dataset, result)


def example_rows(source: BrowserSource, queries: list[str], k: int) -> list[dict[str, Any]]:
    """Top-k of each example query and of the first dataset caption, through the index (no widget)."""
    rows = []
    for query in queries:
        for h in source.index.search(query, k=k, method="exact")[0]:
            rows.append({"query": query, "rank": h.rank, "video_id": h.video_id, "score": h.score})
    if source.dataset is not None and source.dataset.captions:
        caption = source.dataset.captions[0]
        for h in source.index.search(caption.text, k=k, method="exact")[0]:
            rows.append(
                {"query": f"[caption 0] {caption.text}", "rank": h.rank, "video_id": h.video_id,
                 "score": h.score, "ground_truth": h.video_id == caption.video_id}
            )  # fmt: skip
    return rows


def ground_truth_rank(source: BrowserSource, caption_index: int) -> int:
    """Rank (1 = best; ties count against) of a caption's own video among all videos."""
    caption = source.dataset.captions[caption_index]
    scores = source.index.scores(source.index.embed_queries([caption.text]))[0]  # (N,)
    return 1 + int((scores > scores[source.index.row_of(caption.video_id)]).sum())
