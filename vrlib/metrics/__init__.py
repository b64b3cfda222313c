"""Retrieval metrics from a captions x videos similarity matrix: ranks, R@K, MdR, MnR, StdR.

One protocol, written down here and returned with every result (``PROTOCOL``), so that numbers
from different studies can be compared and a reader knows exactly what was counted.

Inputs
    ``sim`` is always captions x videos: ``(C, V)``, or ``(C, V, k)`` when every video has ``k``
    embeddings (k-means centroids). numpy or torch; torch tensors are processed on their own
    device (CUDA stays on CUDA). ``caption_to_video`` is either int ``(C,)`` (caption ``c``
    describes video ``caption_to_video[c]``) or a boolean positives mask ``(C, V)`` for datasets
    where a caption may match several videos (CLIP_benchmark style).

Rank of a query (both directions)
    A query has a set of positives (t2v: the video(s) of the caption; v2t: every caption of the
    video) and the rest are negatives. Let ``s*`` be the best score of any positive. Then

    - ``ties="optimistic"``: rank = 1 + #negatives scoring strictly higher than ``s*``;
    - ``ties="pessimistic"``: rank = 1 + #negatives scoring ``>= s*``;
    - ``ties="mean"``: a uniformly random tie-break, in expectation. With ``r`` the optimistic rank
      and ``t`` the number of negatives tied with ``s*``, the rank is uniform on ``r .. r + t``, so
      the reported rank is its mean ``r + t / 2`` and R@K counts each query with its probability
      ``P(rank <= K) = clamp((K - r + 1) / (t + 1), 0, 1)`` (the expected R@K, not the R@K of
      the mean rank). For ``multi="min_rank"`` the k runs break their ties independently: the
      hit probability is ``1 - prod_j (1 - P_j)``, while the rank (for MdR, MnR) is the smallest
      mean rank over the runs.

    Other positives never count against a query (for one positive per caption this is exactly
    "1 + #other videos scoring higher"). Scores are compared exactly, never via an argsort, so
    tied scores cannot shift ranks by their storage order (the pitfall of the Deferf-derived
    ``tensor_text_to_video_metrics``' double argsort and of ``tf.argsort``; CLIP4Clip's
    ``compute_metrics`` errs differently: it counts a query tied with t negatives t + 1 times).

V2T orientation (``v2t=``), the one place where the reference codes really differ
    - ``v2t="all_captions"`` (default): a video's rank is the best rank of any of its captions
      among ALL C captions: 1 + #captions of other videos scoring higher than the video's best
      caption. This is what Collaborative Experts' code (Liu et al. 2019), frozen-in-time and
      CLIP_benchmark compute (CLIP_benchmark: "any positive caption in the top K").
    - ``v2t="caption_groups"``: the V caption *groups* are ranked, each group scored by its best
      caption: 1 + #other videos' groups whose best caption scores higher than the video's own
      best caption. This is CLIP4Clip's and CLIP2Video's ``tensor_video_to_text_sim`` (max over
      a video's captions, then a V x V ranking) and the Portillo-Quintero notebook. A distractor
      video counts once however many of its captions outrank the positive, so these ranks are
      ``<=`` the all-captions ranks. It needs int ``caption_to_video`` (a group is the captions
      of one video) and holds one ``(V, V, J)`` block of group scores.
    With one caption per video both are identical. ``n`` = V either way.

Several embeddings per video (``sim`` of shape ``(C, V, k)``)
    - ``multi="max_sim"``: a video scores by its best embedding, ``max_j sim[c, v, j]``, then the
      ranks above are computed once.
    - ``multi="min_rank"``: Portillo-Quintero et al. 2021, section 3.4: "repeat the ranking
      procedure with the obtained independent video representations k times and register each
      query's minimum rank". Run j uses ``sim[:, :, j]`` (the j-th embedding of *every* video);
      t2v keeps each caption's minimum rank over j, and v2t likewise keeps each video's minimum
      over j of its v2t rank computed on ``sim[:, :, j]``. This is the paper's text only: the
      released notebook that produced its k-means figures scores ``max_sim`` (preset
      ``portillo``).
    With a 2-D ``sim`` both are the same (k = 1).

Dual softmax (``dsl=True``, off by default)
    The inference-time re-scoring of CAMoE (Cheng et al. 2021, "dual softmax loss") as used in
    the CAMoE / CLIP4Clip-derived evaluation code: ``sim' = sim * softmax(sim / temperature,
    axis=captions)``, i.e. each column (video) gets a prior over captions; their code writes
    ``sim * softmax(sim * 100, axis=0)``, so the default ``dsl_temperature`` is 0.01. The one
    re-scored matrix is used for both directions, as in that code. It is applied after
    ``max_sim`` (to the ``(C, V)`` video scores), or to each ``sim[:, :, j]`` for ``min_rank``.
    DSL uses the statistics of all test queries at once (transductive); the result's
    ``protocol`` says when it was on.

Memory
    Work is done in blocks of ``chunk_size`` caption rows, so besides ``sim`` itself nothing
    larger than a few ``(chunk, V, k)`` blocks plus O(C + V k) vectors is allocated: t2v needs one
    pass; v2t needs two (each video's best caption score, then chunked counts); DSL adds one pass
    for the per-video log-sum-exp. ``sim`` is never copied, sorted or transposed as a whole.

Metrics
    ``R@K`` = 100 * fraction of queries with rank <= K (with ``ties="mean"`` a rank of 1.5 is not
    within R@1); ``MdR`` = median rank (see Median below); ``MnR`` = mean rank; ``StdR`` = population standard deviation of the ranks (ddof=0, as
    in the CLIP2Video/Portillo-Quintero code); ``n`` = number of queries.

Median (``median=``)
    ``"mean_of_middle"`` (default, ``np.median``, CLIP4Clip's ``compute_metrics``) or
    ``"lower_middle"`` (``torch.median``, the lower of the two middle ranks, as CLIP4Clip's and
    CLIP2Video's multi-caption ``tensor_text_to_video_metrics`` and the Portillo-Quintero
    notebook's ``list_recall``). They differ only for even n.

Named presets (``evaluate_protocol``)
    :data:`PRESETS` fixes every option the way one paper's released code counts, including the
    per-direction medians CLIP4Clip mixes (lower middle for multi-caption T2V, np.median for
    V2T) in one call; ties always use ``"mean"`` and the preset says how the released code
    differs. ``intervals=`` adds cluster-bootstrap intervals (:mod:`.bootstrap`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vrlib.metrics.bootstrap import cluster_bootstrap
from vrlib.metrics.inputs import _check_groups, _prepare
from vrlib.metrics.protocol import (
    BLOCK_ELEMENTS,
    DIRECTIONS,
    DSL_TEMPERATURE,
    MEDIANS,
    MULTI,
    PRESETS,
    PROTOCOL,
    RECALL_AT,
    TIES,
    V2T,
    Preset,
    _check_choices,
    get_preset,
    protocol,
)
from vrlib.metrics.ranking import _compute_ranks

__all__ = [
    "BLOCK_ELEMENTS",
    "DIRECTIONS",
    "DSL_TEMPERATURE",
    "MEDIANS",
    "MULTI",
    "PRESETS",
    "PROTOCOL",
    "RECALL_AT",
    "TIES",
    "V2T",
    "Preset",
    "cluster_bootstrap",
    "evaluate",
    "evaluate_protocol",
    "get_preset",
    "protocol",
    "ranks",
    "summarize",
]


def evaluate(
    sim: np.ndarray | torch.Tensor,
    caption_to_video: np.ndarray | torch.Tensor | list[int],
    multi: str = "max_sim",
    ties: str = "optimistic",
    dsl: bool = False,
    chunk_size: int | None = None,
    dsl_temperature: float = DSL_TEMPERATURE,
    v2t: str = "all_captions",
    median: str = "mean_of_middle",
) -> dict[str, dict[str, Any]]:
    """Text-to-video and video-to-text metrics under the protocol of the module docstring.

    Args:
        sim: similarity scores ``(C, V)`` or ``(C, V, k)``, numpy or torch (any device).
        caption_to_video: int ``(C,)`` video index of each caption, or bool ``(C, V)`` positives.
        multi: ``"max_sim"`` or ``"min_rank"`` (only matters when ``sim`` has k > 1 embeddings).
        ties: ``"optimistic"``, ``"pessimistic"`` or ``"mean"`` (expected R@K of a random
            tie-break).
        dsl: re-score with dual softmax before ranking.
        chunk_size: caption rows per block; None picks about 4M scores per block.
        dsl_temperature: softmax temperature of the dual softmax (0.01 = CAMoE's ``* 100``).
        v2t: ``"all_captions"`` or ``"caption_groups"`` (see "V2T orientation").
        median: ``"mean_of_middle"`` (np.median) or ``"lower_middle"`` (torch.median).

    Returns:
        ``{"t2v": {...}, "v2t": {...}, "protocol": {...}}``; each direction holds ``R@1``, ``R@5``,
        ``R@10`` (percent), ``MdR``, ``MnR``, ``StdR`` and ``n``.

    Raises:
        ValueError: bad shapes or values (named), non-finite scores, or videos without a caption
            (v2t is undefined for them; use ``ranks(..., direction="t2v")`` for t2v alone).
    """
    _check_choices(multi=multi, ties=ties, v2t=v2t, median=median)
    problem = _prepare(sim, caption_to_video, chunk_size, need_v2t=True)
    _check_groups(problem, v2t)
    ranked = _compute_ranks(problem, DIRECTIONS, multi, ties, dsl, dsl_temperature, v2t)
    result: dict[str, dict[str, Any]] = {
        d: summarize(rank, median=median, hits=hits) for d, (rank, hits) in ranked.items()
    }
    result["protocol"] = protocol(
        multi=multi, ties=ties, dsl=dsl, dsl_temperature=dsl_temperature, v2t=v2t, median=median
    )
    return result


def ranks(
    sim: np.ndarray | torch.Tensor,
    caption_to_video: np.ndarray | torch.Tensor | list[int],
    direction: str = "t2v",
    multi: str = "max_sim",
    ties: str = "optimistic",
    dsl: bool = False,
    chunk_size: int | None = None,
    dsl_temperature: float = DSL_TEMPERATURE,
    v2t: str = "all_captions",
) -> np.ndarray:
    """1-based rank of every query: ``(C,)`` for ``"t2v"``, ``(V,)`` for ``"v2t"``.

    Integer ranks (int64) for ``ties="optimistic"|"pessimistic"``, float64 for ``"mean"`` (the
    expected rank). Arguments as in :func:`evaluate`. Videos without a caption are allowed for
    t2v (they are distractors) and rejected for v2t.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; valid: {', '.join(DIRECTIONS)}")
    _check_choices(multi=multi, ties=ties, v2t=v2t)
    problem = _prepare(sim, caption_to_video, chunk_size, need_v2t=direction == "v2t")
    if direction == "v2t":
        _check_groups(problem, v2t)
    ranked = _compute_ranks(problem, (direction,), multi, ties, dsl, dsl_temperature, v2t)
    return ranked[direction][0]


def summarize(
    rank: np.ndarray, median: str = "mean_of_middle", hits: np.ndarray | None = None
) -> dict[str, Any]:
    """R@1/5/10 (percent), MdR, MnR, StdR (population) and n of 1-based ranks.

    Args:
        rank: ``(n,)`` ranks.
        median: ``"mean_of_middle"`` (np.median) or ``"lower_middle"`` (torch.median).
        hits: optional ``(n, len(RECALL_AT))`` probability that each query is within each K (the
            expected R@K of ``ties="mean"``); None counts ``rank <= K``.
    """
    _check_choices(median=median)
    rank = np.asarray(rank, dtype=np.float64)
    if rank.ndim != 1 or rank.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array; got shape {rank.shape}")
    if hits is None:
        hits = rank[:, None] <= np.asarray(RECALL_AT)[None, :]  # (n, len(RECALL_AT))
    elif np.shape(hits) != (rank.size, len(RECALL_AT)):
        raise ValueError(f"hits must be (n, {len(RECALL_AT)}) = {(rank.size, len(RECALL_AT))}")
    recall = 100.0 * np.mean(hits, axis=0)
    out: dict[str, Any] = {f"R@{k}": float(r) for k, r in zip(RECALL_AT, recall, strict=True)}
    middle = np.sort(rank)[(rank.size - 1) // 2] if median == "lower_middle" else np.median(rank)
    out.update(MdR=float(middle), MnR=float(np.mean(rank)), StdR=float(np.std(rank)), n=rank.size)
    return out


def evaluate_protocol(
    sim: np.ndarray | torch.Tensor,
    caption_to_video: np.ndarray | torch.Tensor | list[int],
    preset: str | Preset = "clip4clip",
    dsl: bool = False,
    chunk_size: int | None = None,
    dsl_temperature: float = DSL_TEMPERATURE,
    intervals: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Both directions under a named preset, each with its own median rule, in one pass.

    Args:
        sim: ``(C, V)`` or ``(C, V, k)`` scores, as :func:`evaluate`.
        caption_to_video: int ``(C,)`` or bool ``(C, V)`` positives.
        preset: a name in :data:`PRESETS` (the error lists them) or a :class:`Preset`.
        dsl: re-score with dual softmax (transductive; the record says so).
        chunk_size: caption rows per block; None picks about 4M scores per block.
        dsl_temperature: dual softmax temperature.
        intervals: bootstrap draws for cluster-bootstrap intervals (0: none). Queries are
            resampled by video: t2v clusters are the captions' videos, v2t the videos.
        seed: the bootstrap's seed.

    Returns:
        ``{"t2v": {...}, "v2t": {...}, "protocol": {...}}`` as :func:`evaluate`; with
        ``intervals`` each direction also holds ``"CI": {metric: [low, high]}``; the protocol
        holds ``"preset"``: every choice (:meth:`Preset.record`).
    """
    chosen = get_preset(preset) if isinstance(preset, str) else preset
    problem = _prepare(sim, caption_to_video, chunk_size, need_v2t=True)
    _check_groups(problem, chosen.v2t)
    one_caption = _one_caption_per_video(caption_to_video)
    medians = chosen.medians(one_caption)
    ranked = _compute_ranks(
        problem, DIRECTIONS, chosen.multi, chosen.ties, dsl, dsl_temperature, chosen.v2t
    )
    clusters = {"t2v": _caption_clusters(caption_to_video), "v2t": np.arange(problem.num_videos)}
    result: dict[str, dict[str, Any]] = {}
    for d, (rank, hits) in ranked.items():
        result[d] = summarize(rank, median=medians[d], hits=hits)
        if intervals:
            result[d]["CI"] = cluster_bootstrap(
                rank, clusters[d], medians[d], hits, samples=intervals, seed=seed
            )
    result["protocol"] = protocol(
        multi=chosen.multi, ties=chosen.ties, dsl=dsl, dsl_temperature=dsl_temperature,
        v2t=chosen.v2t, median=medians["t2v"],
    )  # fmt: skip
    result["protocol"]["median_used"] = medians
    result["protocol"]["preset"] = chosen.record(one_caption, dsl)
    return result


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _one_caption_per_video(caption_to_video: Any) -> bool:
    """True when every video has exactly one caption (then CLIP4Clip uses compute_metrics)."""
    c2v = _as_numpy(caption_to_video)
    if c2v.dtype == np.bool_:
        return bool((c2v.sum(0) == 1).all() and (c2v.sum(1) == 1).all())
    return bool((np.bincount(c2v) == 1).all())


def _caption_clusters(caption_to_video: Any) -> np.ndarray:
    """Each caption's video (the first positive, for a mask): the t2v bootstrap's clusters."""
    c2v = _as_numpy(caption_to_video)
    return c2v.argmax(1) if c2v.dtype == np.bool_ else c2v
