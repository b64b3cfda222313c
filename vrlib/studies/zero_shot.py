"""Study 01 — zero-shot frame aggregation (Portillo-Quintero et al. 2021).

Question: how should the frame embeddings of an image-text model become a video embedding,
with no training? Settings, named as in metrics.json:

- ``single``: the frame nearest ``single_at_seconds`` (the paper's 30th frame of a 30 fps video);
- ``mean``: mean of the L2-normalised frame embeddings;
- ``kmeans-k{k}-min_rank``: k centroids, ranked k times, each query keeps its best rank (the paper);
- ``kmeans-k{k}-max_sim``: k centroids, a video scores by its best centroid (one ranking).

The paper explores on 1,000 validation pairs (T2V) and confirms on the test sets (T2V and V2T,
all captions = MSR-VTT Full's protocol, one caption per video = 1k-A's).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from vrlib.aggregate import aggregate
from vrlib.metrics import evaluate
from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams


@register_study(
    "zero_shot_aggregation",
    "01_zero_shot_aggregation.ipynb",
    "01 — Zero-shot frame aggregation (Portillo-Quintero 2021)",
)
class ZeroShotParams(FeatureStudyParams):
    """Parameters of study 01 (``parameters/zero_shot_aggregation/*.yaml``)."""

    single_at_seconds: float = Field(1.0, ge=0)
    kmeans_k: list[int] = Field(default_factory=lambda: list(range(2, 11)))
    kmeans_iters: int = Field(20, gt=0)
    explore_split: str = "val"
    confirm_split: str = "test"

    def settings(self) -> list[str]:
        """Every setting of the exploratory table, in the paper's order."""
        kmeans = [f"kmeans-k{k}-{p}" for k in self.kmeans_k for p in ("min_rank", "max_sim")]
        return ["single", "mean", *kmeans]


def nearest_frame(timestamps: np.ndarray, at_seconds: float) -> int:
    """Index of the sampled frame closest in time to ``at_seconds`` (the last one if the video is shorter)."""
    return int(np.argmin(np.abs(np.asarray(timestamps) - at_seconds)))


def video_embeddings(features, setting: str, params: ZeroShotParams) -> torch.Tensor:
    """Frame features of every video -> ``(V, d)`` or, for k-means, ``(V, k, d)``.

    Args:
        features: ``vrlib.features.FrameFeatures`` (per-video ``(T_i, d)`` and timestamps).
        setting: one of ``params.settings()``.
    """
    frames = features.features
    if setting == "single":
        picks = [nearest_frame(ts, params.single_at_seconds) for ts in features.timestamps]
        return torch.stack(
            [aggregate(f, "single", index=i) for f, i in zip(frames, picks, strict=True)]
        )
    if setting == "mean":
        return aggregate(frames, "mean")
    k = parse_kmeans(setting)[0]
    return aggregate(
        frames, "kmeans", k=k, seed=params.seed, iters=params.kmeans_iters
    )  # (V, k, d)


def parse_kmeans(setting: str) -> tuple[int, str]:
    """``kmeans-k4-min_rank`` -> ``(4, "min_rank")``; ValueError names the bad setting."""
    try:
        head, multi = setting.rsplit("-", 1)
        k = int(head.removeprefix("kmeans-k"))
    except ValueError:
        raise ValueError(
            f"bad setting {setting!r}; expected single, mean or kmeans-k<K>-<min_rank|max_sim>"
        ) from None
    if multi not in ("min_rank", "max_sim"):
        raise ValueError(f"bad protocol in {setting!r}; valid: min_rank, max_sim")
    return k, multi


def similarity(text: torch.Tensor, videos: torch.Tensor) -> torch.Tensor:
    """Cosine similarity captions x videos: ``(C, V)``, or ``(C, V, k)`` for k embeddings per video."""
    if videos.dim() == 2:
        return text @ videos.T  # (C, V)
    return torch.einsum("cd,vkd->cvk", text, videos)  # (C, V, k)


def evaluate_setting(
    text: torch.Tensor, videos: torch.Tensor, caption_to_video, setting: str
) -> dict:
    """Retrieval metrics of one setting (k-means settings use their own multi-embedding protocol)."""
    multi = parse_kmeans(setting)[1] if setting.startswith("kmeans") else "max_sim"
    return evaluate(similarity(text, videos), caption_to_video, multi=multi)
