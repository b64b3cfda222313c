"""Study 06 — the query browser, run headless as a report.

The widget (``vrlib.browse.QueryBrowser``) is for JupyterLab; its report runs a few example
queries through the same index and saves their ranked results, so a broken browser fails CI.

Two sources: a dataset split (the default: its captions can be picked and their ground-truth
rank is shown, its R@K is in the header), or ``index: PATH``, an index folder written by
``python -m vrlib index`` over one's own videos (free queries only: a plain folder has no
captions, so no ground truth and no R@K). ``~`` in ``index`` is the home folder; a relative path
is read from the folder the notebook runs in (``notebooks/``), so prefer an absolute one. The
folder is checked (``check_files``) before the notebook starts.

With ``index:``, the encoder is the model and weights the index's manifest names. Giving
``encoder.pretrained`` (an open_clip tag or a checkpoint path) replaces the manifest's weights,
for a checkpoint that has moved since the index was built; the index still refuses weights that
are not the ones it was built with (their fingerprint differs). ``expert``, the default, keeps
the manifest's weights: the world's expert belongs to the embedded world, not to one's own videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from vrlib.studies import register_study
from vrlib.studies.common import (
    EXPERT,
    FeatureStudyParams,
    check_expert,
    check_splits,
    known_aggregation,
)

NO_GROUND_TRUTH = (
    "a plain index has no captions, so no ground truth and no R@K: ground truth needs a dataset "
    "with captions (leave `index:` unset and name the dataset under `data:`)"
)


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

    @model_validator(mode="after")
    def _consistent(self) -> BrowserParams:
        """As every feature study, except that with ``index:`` the weights are the index's own,
        so ``pretrained: expert`` is not checked against ``encoder.model`` (see the module doc)."""
        check_splits(self.data, self.split_keys())
        if self.index is None:
            check_expert(self.data, self.encoder)
        return self

    @field_validator("index")
    @classmethod
    def _expand_home(cls, path: str | None) -> str | None:
        return None if path is None else str(Path(path).expanduser())

    def index_encoder(self, manifest: dict) -> tuple[str, str | None]:
        """``(model, pretrained)`` that answer queries of an index with this ``manifest``."""
        pretrained = self.encoder.pretrained
        if "pretrained" not in self.encoder.model_fields_set or pretrained == EXPERT:
            pretrained = manifest.get("pretrained")
        return manifest.get("model"), pretrained

    def check_files(self) -> None:
        """The ``index`` folder, its model and weights, before the notebook starts (ValueError)."""
        if self.index is None:
            return
        from vrlib.encoders import check_model_name, check_pretrained
        from vrlib.index.store import MANIFEST
        from vrlib.io import read_json

        folder = Path(self.index)
        if not (folder / MANIFEST).is_file():
            what = (
                "folder not found"
                if not folder.exists()
                else f"not an index folder (no {MANIFEST})"
            )
            raise ValueError(
                f"index: {folder}: {what}; build one with `python -m vrlib index VIDEO_DIR` "
                "and give its folder (VIDEO_DIR/.vrlib-index)"
            )
        try:
            manifest = read_json(folder / MANIFEST)  # its errors name the file
        except ValueError as e:
            raise ValueError(f"index: {e}") from None
        model, pretrained = self.index_encoder(manifest)
        try:
            check_model_name(str(model))
        except ValueError as e:
            raise ValueError(f"index: {folder / MANIFEST}: {e}") from None
        if "model" in self.encoder.model_fields_set and self.encoder.model != model:
            raise ValueError(
                f"encoder.model: {self.encoder.model!r}, but the index {folder} was built with "
                f"{model!r}; remove encoder.model or set it to {model!r}"
            )
        if pretrained is not None and not pretrained.startswith("random("):
            try:
                check_pretrained(model, pretrained)
            except (FileNotFoundError, ValueError) as e:
                given = "encoder.pretrained" if pretrained == self.encoder.pretrained else "index"
                raise ValueError(
                    f"{given}: {e}; the index {folder} was built with weights "
                    f"{manifest.get('pretrained')!r}: give their new place as encoder.pretrained"
                ) from None

    def split_keys(self) -> dict[str, str]:
        return {"split": self.split}


@dataclass
class BrowserSource:
    """What the browser shows: the index, its encoder, the dataset (or None) and its metrics."""

    index: Any
    encoder: Any
    dataset: Any = None
    result: dict | None = None

    def describe(self) -> str:
        """One line for the notebook: the index and its R@K, or why a plain index has none."""
        metrics = self.header_metrics()
        if not metrics:
            return f"{self.index}: {NO_GROUND_TRUTH}"
        return f"{self.index}: text -> video " + ", ".join(
            f"{k} {v:.1f}" for k, v in metrics.items()
        )

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
        encoder = open_encoder(*p.index_encoder(index.manifest), p.encoder.device)
        return BrowserSource(index.attach(encoder), encoder)

    from vrlib.aggregate import aggregate
    from vrlib.metrics import evaluate
    from vrlib.studies.common import prepare_split
    from vrlib.studies.inputs import load_encoder

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
