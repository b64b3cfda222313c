"""Failure analysis of a retrieval run: where and why queries rank badly.

Why separate from the notebook: the same breakdowns (rank vs video length, worst queries, per-tag
recall) apply to any model and dataset, and are tested here on small hand-made inputs. Each
function takes plain arrays and returns a pandas DataFrame the notebook plots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def caption_frame(dataset, ranks: np.ndarray) -> pd.DataFrame:
    """One row per caption: its text, tags, video, the video's duration and shots, and its T2V rank."""
    c2v = np.asarray(dataset.caption_to_video)
    if len(ranks) != len(c2v):
        raise ValueError(f"ranks has {len(ranks)} entries but the dataset has {len(c2v)} captions")
    rows = []
    for i, (cap, v) in enumerate(zip(dataset.captions, c2v, strict=True)):
        video = dataset.videos[v]
        meta = video.meta or {}
        rows.append(
            {
                "caption_index": i,
                "caption": cap.text,
                "tags": tuple(cap.tags),
                "video_id": video.video_id,
                "video_index": int(v),
                "duration": float(meta.get("duration", np.nan)),
                "num_shots": meta.get("num_shots"),
                "rank": float(ranks[i]),
            }
        )
    return pd.DataFrame(rows)


def rank_vs_length(df: pd.DataFrame, bins: int | Sequence[float] = 5) -> pd.DataFrame:
    """Median, mean rank and R@1 per video-length bin (the paper's Figure 1, in numbers)."""
    out = df.assign(length_bin=pd.cut(df["duration"], bins=bins))
    return (
        out.groupby("length_bin", observed=True)["rank"]
        .agg(
            n="size",
            median_rank="median",
            mean_rank="mean",
            r_at_1=lambda r: 100.0 * (r <= 1).mean(),
        )
        .reset_index()
    )


def length_rank_correlation(df: pd.DataFrame) -> float:
    """Spearman correlation between video duration and caption rank (positive: longer ranks worse)."""
    return float(df["duration"].rank().corr(df["rank"].rank()))


def worst_queries(df: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The ``k`` captions ranked worst, worst first (ties broken by caption order)."""
    return (
        df.sort_values(["rank", "caption_index"], ascending=[False, True])
        .head(k)
        .reset_index(drop=True)
    )


def tag_share(df: pd.DataFrame, tag: str, worst_k: int) -> dict[str, float]:
    """Share (%) of captions carrying ``tag`` among the ``worst_k`` worst vs among all captions."""
    has = df["tags"].map(lambda t: tag in t)
    worst = worst_queries(df, worst_k)
    return {
        "tag": tag,
        "share_worst_%": 100.0 * float(worst["tags"].map(lambda t: tag in t).mean()),
        "share_all_%": 100.0 * float(has.mean()),
        "worst_k": worst_k,
    }


def recall_by(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """R@1, R@5 and median rank per value of ``key`` (``tag`` explodes the tag lists, one row per tag)."""
    data = df.explode("tags").rename(columns={"tags": "tag"}) if key == "tag" else df
    data = data.assign(tag=data["tag"].fillna("(none)")) if key == "tag" else data
    return (
        data.groupby(key, observed=True)["rank"]
        .agg(
            n="size",
            r_at_1=lambda r: 100.0 * (r <= 1).mean(),
            r_at_5=lambda r: 100.0 * (r <= 5).mean(),
            median_rank="median",
        )
        .reset_index()
    )
