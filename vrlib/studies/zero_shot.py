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

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from vrlib.aggregate import aggregate
from vrlib.metrics import evaluate
from vrlib.papers import paper_rows
from vrlib.studies import register_study
from vrlib.studies.common import FeatureStudyParams
from vrlib.studies.toolkit import lookup, paired_cluster_bootstrap, relation


@register_study(
    "zero_shot_aggregation",
    "01_zero_shot_aggregation.ipynb",
    "01 — Zero-shot frame aggregation (Portillo-Quintero 2021)",
)
class ZeroShotParams(FeatureStudyParams):
    """Parameters of study 01 (``parameters/zero_shot_aggregation/*.yaml``)."""

    single_at_seconds: float = Field(1.0, ge=0)
    kmeans_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: list(range(2, 11)), min_length=1
    )  # k >= 1, as vrlib.aggregate's kmeans requires
    kmeans_iters: int = Field(20, gt=0)
    explore_split: str = "val"
    confirm_split: str = "test"
    n_boot: int = Field(1000, ge=100)  # mean vs single: cluster bootstrap over videos

    def split_keys(self) -> dict[str, str]:
        return {"explore_split": self.explore_split, "confirm_split": self.confirm_split}

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


def mean_vs_single(features, text: torch.Tensor, caption_to_video, params: ZeroShotParams) -> dict:
    """Mean minus single frame, T2V R@1, by a paired cluster bootstrap over videos (each with all
    its captions); the paper's validation difference is the effect it is judged against."""
    from vrlib.metrics import ranks
    from vrlib.studies.toolkit import decide

    hits = {}
    for setting in ("mean", "single"):
        sim = similarity(text, video_embeddings(features, setting, params))
        hits[setting] = 100.0 * (ranks(sim, caption_to_video) == 1)  # (C,)
    test = paired_cluster_bootstrap(hits["mean"], hits["single"], np.asarray(caption_to_video),
                                    n_boot=params.n_boot, seed=params.seed)  # fmt: skip
    paper = paper_rows("zero_shot_aggregation")
    effect = lookup(paper, "R@1", setting="mean", split="val") - lookup(
        paper, "R@1", setting="single", split="val"
    )
    return {**test, "paper diff": effect, "verdict": decide(test, effect=effect)}


def reading(
    params: ZeroShotParams,
    explore_rows: list[dict],
    confirm_rows: list[dict],
    best_kmeans: str,
    our_v2t: str,
    versus: dict | None = None,
) -> str:
    """The study's reading: every number, and every word comparing two numbers, from the rows.

    Args:
        explore_rows: T2V rows on ``params.explore_split``, one per setting of ``params.settings()``.
        confirm_rows: rows on ``{confirm_split}-all-captions`` (T2V and V2T) for ``mean``.
        best_kmeans: the ``min_rank`` setting chosen on the exploratory split.
        our_v2t: the V2T protocol our rows used (``protocol["v2t_used"]`` of ``evaluate``).
        versus: ``mean_vs_single`` (the cluster bootstrap); without it "beats" reads the means.
    """
    paper = paper_rows("zero_shot_aggregation")

    def r1(setting, split=params.explore_split, direction="t2v", rows=explore_rows):
        return lookup(rows, "R@1", setting=setting, split=split, direction=direction)

    single, mean, best = r1("single"), r1("mean"), r1(best_kmeans)
    k_lo, k_hi = min(params.kmeans_k), max(params.kmeans_k)
    min_lo, min_hi = r1(f"kmeans-k{k_lo}-min_rank"), r1(f"kmeans-k{k_hi}-min_rank")
    max_best = max(r1(f"kmeans-k{k}-max_sim") for k in params.kmeans_k)
    all_caps = f"{params.confirm_split}-all-captions"
    beats = relation(mean, single, above="beats", below="does not beat", within="does not beat")
    test = ""
    if versus is not None:
        beats = {"holds": "beats", "reversed": "falls below"}.get(
            versus["verdict"], "is not shown to beat"
        )
        test = (f" (mean - single {versus['value']:+.1f} [{versus['lo']:+.1f}, {versus['hi']:+.1f}], "
                f"paired cluster bootstrap over {versus['n_clusters']} videos: {versus['verdict']}, "
                f"MDD {versus['mdd']:.1f})")  # fmt: skip
    max_sim = relation(max_best, mean, 2, below="not above", within="not above")
    grows = relation(min_hi, min_lo, above="grows with k here", below="falls with k here",
                     within="stays level with k here")  # fmt: skip
    return (
        f"On validation, mean ({mean:.1f} R@1) {beats} the single frame at "
        f"{params.single_at_seconds:g} s ({single:.1f}){test}; the paper: "
        f"{r1('mean', 'val', rows=paper):.1f} vs {r1('single', 'val', rows=paper):.1f}. "
        f"k-means under min_rank goes from {min_lo:.1f} (k={k_lo}) to {min_hi:.1f} (k={k_hi}), "
        f"best {best_kmeans} {relation(best, mean, 2)} mean; under max_sim "
        f"(one ranking) the best k gives {max_best:.1f}, {max_sim} mean. "
        f"The paper saw k-means level with mean on MSR-VTT, with figures computed by max over "
        f"centroids (max_sim, its notebook) although its text describes min_rank. min_rank keeps each query's "
        f"best of k separate rankings, so it is optimistic and can grow with k when videos hold several "
        f"distinct shots; it {grows}. max_sim is a single ranking. On test (all captions), mean: V2T "
        f"{r1('mean', all_caps, 'v2t', confirm_rows):.1f} vs "
        f"T2V {r1('mean', all_caps, 't2v', confirm_rows):.1f} R@1 (paper, MSR-VTT Full: "
        f"{r1('mean', 'test-all-captions', 'v2t', paper):.1f} vs "
        f"{r1('mean', 'test-all-captions', 't2v', paper):.1f}; its V2T ranks caption groups, ours "
        f"{our_v2t})."
    )


def reading_from_metrics(doc: dict) -> str:
    """The reading again, from a report's metrics.json alone (what the notebook wrote)."""
    params = ZeroShotParams.model_validate(doc["params"])
    rows = doc["rows"]
    explore = [r for r in rows if r["split"] == params.explore_split]
    confirm = [r for r in rows if r["split"].startswith(f"{params.confirm_split}-")]
    return reading(params, explore, confirm, doc["best_kmeans_on_val"],
                   doc["protocol"]["v2t_used"], doc.get("mean_vs_single"))  # fmt: skip
