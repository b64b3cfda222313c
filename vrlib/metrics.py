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
    tied scores cannot shift ranks by their storage order (the CLIP4Clip pitfall in STYLE.md).

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
      over j of its v2t rank computed on ``sim[:, :, j]``.
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
    CLIP2Video's multi-caption ``tensor_text_to_video_metrics``). They differ only for even n.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

TIES = ("optimistic", "pessimistic", "mean")
MULTI = ("max_sim", "min_rank")
V2T = ("all_captions", "caption_groups")
MEDIANS = ("mean_of_middle", "lower_middle")
DIRECTIONS = ("t2v", "v2t")
RECALL_AT = (1, 5, 10)
DSL_TEMPERATURE = 0.01
BLOCK_ELEMENTS = 1 << 22  # default chunk: about 4M scores (16 MB in float32) per block

PROTOCOL: dict[str, Any] = {
    "name": "vrlib-retrieval-v2",  # v2: v2t and median options; ties="mean" is an expectation
    "sim": "captions x videos; (C, V) or (C, V, k) for k embeddings per video",
    "rank": "1 + #negatives scoring above the query's best positive (see ties); 1-based",
    "ties": {
        "optimistic": "negatives with an equal score do not count",
        "pessimistic": "negatives with an equal score count",
        "mean": (
            "uniformly random tie-break in expectation: rank = optimistic + ties / 2; R@K = mean "
            "of P(rank <= K) = clamp((K - r + 1) / (t + 1), 0, 1)"
        ),
    },
    "t2v": "query = caption, candidates = all V videos; n = C",
    "v2t": {
        "all_captions": (
            "query = video, candidates = all C captions; a video's rank is the best rank of any of "
            "its captions (Collaborative Experts, frozen-in-time, CLIP_benchmark); n = V"
        ),
        "caption_groups": (
            "query = video, candidates = the V caption groups, each scored by its best caption "
            "(CLIP4Clip, CLIP2Video, Portillo-Quintero notebook); n = V"
        ),
    },
    "median": {
        "mean_of_middle": "np.median: mean of the two middle ranks when n is even",
        "lower_middle": "torch.median: the lower of the two middle ranks",
    },
    "multi": {
        "max_sim": "a video scores by its best embedding (max over k), ranked once",
        "min_rank": (
            "ranked k times, run j with every video's j-th embedding; each query keeps its "
            "minimum rank (Portillo-Quintero et al. 2021, 3.4); v2t likewise per run"
        ),
    },
    "dsl": (
        "off unless dsl=True: sim * softmax(sim / dsl_temperature over captions, per video) "
        "(CAMoE dual softmax at inference), one re-scored matrix for both directions"
    ),
    "metrics": "R@K percent of queries with rank <= K; MdR median; MnR mean; StdR population std",
    # the settings of one call; evaluate() fills these in
    "ties_used": "optimistic",
    "multi_used": "max_sim",
    "v2t_used": "all_captions",
    "median_used": "mean_of_middle",
    "dsl_used": False,
}


@dataclass(frozen=True)
class _Problem:
    """Validated inputs: the similarity source and the positives, both on ``device``."""

    sim: np.ndarray | torch.Tensor
    labels: torch.Tensor | None  # (C,) int64, or None when a mask is given
    mask: np.ndarray | torch.Tensor | None  # (C, V) bool
    num_captions: int
    num_videos: int
    k: int
    chunk: int
    device: torch.device


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


def protocol(
    multi: str = "max_sim",
    ties: str = "optimistic",
    dsl: bool = False,
    dsl_temperature: float = DSL_TEMPERATURE,
    v2t: str = "all_captions",
    median: str = "mean_of_middle",
) -> dict[str, Any]:
    """``PROTOCOL`` with the settings of one evaluation filled in (what goes into metrics.json)."""
    out = dict(PROTOCOL, ties_used=ties, multi_used=multi, v2t_used=v2t, median_used=median)
    out["dsl_used"] = bool(dsl)
    if dsl:
        out["dsl_temperature"] = float(dsl_temperature)
    return out


# --------------------------------------------------------------------------- validation


_CHOICES = {"multi": MULTI, "ties": TIES, "v2t": V2T, "median": MEDIANS}


def _check_choices(**chosen: str) -> None:
    """Each option must be one of its valid names; the error lists them."""
    for key, value in chosen.items():
        if value not in _CHOICES[key]:
            raise ValueError(f"{key}={value!r}; valid: {', '.join(_CHOICES[key])}")


def _check_groups(p: _Problem, v2t: str) -> None:
    if v2t == "caption_groups" and p.labels is None:
        raise ValueError(
            "v2t='caption_groups' needs int caption_to_video (C,): with a positives mask a "
            "caption may belong to several videos, so its caption groups are undefined"
        )


def _prepare(sim: Any, caption_to_video: Any, chunk_size: int | None, need_v2t: bool) -> _Problem:
    """Validate ``sim`` and ``caption_to_video``; errors name the argument and the reason."""
    if not isinstance(sim, np.ndarray | torch.Tensor):
        raise TypeError(f"sim must be a numpy array or torch tensor; got {type(sim).__name__}")
    if sim.ndim not in (2, 3) or 0 in sim.shape:
        raise ValueError(
            f"sim must be (C, V) or (C, V, k) with no empty axis; got {tuple(sim.shape)}"
        )
    if not _is_real_number(sim):
        raise ValueError(f"sim must hold real numbers; got dtype {sim.dtype}")
    num_c, num_v = int(sim.shape[0]), int(sim.shape[1])
    k = int(sim.shape[2]) if sim.ndim == 3 else 1
    device = sim.device if isinstance(sim, torch.Tensor) else torch.device("cpu")
    if chunk_size is None:
        chunk = max(1, BLOCK_ELEMENTS // (num_v * k))
    elif isinstance(chunk_size, int | np.integer) and chunk_size > 0:
        chunk = int(chunk_size)
    else:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")

    labels, mask = _positives_source(caption_to_video, num_c, num_v, device)
    _check_coverage(labels, mask, num_v, need_v2t)
    return _Problem(sim, labels, mask, num_c, num_v, k, chunk, device)


def _is_real_number(x: np.ndarray | torch.Tensor) -> bool:
    if isinstance(x, np.ndarray):
        return np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    return not (x.is_complex() or x.dtype == torch.bool)


def _is_bool(x: np.ndarray | torch.Tensor) -> bool:
    return x.dtype == np.bool_ if isinstance(x, np.ndarray) else x.dtype == torch.bool


def _positives_source(
    c2v: Any, num_c: int, num_v: int, device: torch.device
) -> tuple[torch.Tensor | None, np.ndarray | torch.Tensor | None]:
    """Either int labels ``(C,)`` on ``device`` or a bool mask ``(C, V)`` (kept where it lives)."""
    if isinstance(c2v, list | tuple):
        c2v = np.asarray(c2v)
    if not isinstance(c2v, np.ndarray | torch.Tensor):
        raise TypeError(
            f"caption_to_video must be an int array (C,) or a bool mask (C, V); got {type(c2v).__name__}"
        )
    if _is_bool(c2v):
        if tuple(c2v.shape) != (num_c, num_v):
            raise ValueError(
                f"caption_to_video mask has shape {tuple(c2v.shape)}; sim needs (C, V) = {(num_c, num_v)}"
            )
        return None, c2v
    labels = torch.as_tensor(c2v)
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"caption_to_video must hold integer video indices (or be a bool mask); got dtype {c2v.dtype}"
        )
    if tuple(labels.shape) != (num_c,):
        raise ValueError(
            f"caption_to_video has shape {tuple(labels.shape)}; sim has C={num_c} caption rows, "
            f"so it must be ({num_c},) or a ({num_c}, {num_v}) bool mask"
        )
    labels = labels.to(device=device, dtype=torch.int64)
    bad = torch.nonzero((labels < 0) | (labels >= num_v)).flatten()
    if bad.numel():
        first = bad[:5].tolist()
        raise ValueError(
            f"caption_to_video has {bad.numel()} values outside [0, {num_v}) (V={num_v}): "
            f"captions {first} -> {labels[bad[:5]].tolist()}"
        )
    return labels, None


def _check_coverage(
    labels: torch.Tensor | None, mask: np.ndarray | torch.Tensor | None, num_v: int, need_v2t: bool
) -> None:
    """Every caption needs a positive video; for v2t every video needs a caption."""
    if mask is not None:
        has_video = torch.as_tensor(mask.any(1))  # (C,)
        orphans = torch.nonzero(~has_video).flatten()
        if orphans.numel():
            raise ValueError(
                f"caption_to_video mask: {orphans.numel()} captions have no positive video, "
                f"e.g. captions {orphans[:10].tolist()}"
            )
        has_caption = torch.as_tensor(mask.any(0))  # (V,)
    else:
        has_caption = torch.bincount(labels, minlength=num_v) > 0
    silent = torch.nonzero(~has_caption).flatten()
    if need_v2t and silent.numel():
        raise ValueError(
            f"{silent.numel()} of {num_v} videos have no caption in caption_to_video, so their v2t "
            f"rank is undefined: videos {silent[:10].tolist()}; drop them from sim or rank t2v alone"
        )


# --------------------------------------------------------------------------- ranking


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _rows(p: _Problem, start: int, stop: int) -> torch.Tensor:
    """Caption rows ``[start, stop)`` of ``sim`` as a float tensor ``(n, V, k)`` on the device."""
    block = p.sim[start:stop]
    if isinstance(block, np.ndarray):
        block = torch.from_numpy(np.ascontiguousarray(block))
    block = block.to(p.device)
    if not block.is_floating_point():
        return block.double().reshape(stop - start, p.num_videos, p.k)  # exact for integer scores
    if block.dtype in (torch.float16, torch.bfloat16):
        block = block.float()
    low, high = torch.aminmax(block)  # NaN propagates; cheaper than isfinite(block).all()
    if not (torch.isfinite(low) and torch.isfinite(high)):
        raise ValueError(
            f"sim has non-finite values (NaN or inf) in caption rows {start}..{stop - 1}"
        )
    return block.reshape(stop - start, p.num_videos, p.k)  # (n, V, k)


def _scores(
    p: _Problem, start: int, stop: int, multi: str, lse: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """The scores ranked for captions ``[start, stop)``: ``(n, V, J)``, J = 1 or k (min_rank)."""
    x = _rows(p, start, stop)
    if multi == "max_sim" and p.k > 1:
        x = x.amax(dim=2, keepdim=True)  # (n, V, 1)
    if lse is not None:
        x = x * torch.exp(x / temperature - lse)  # dual softmax prior over captions, per video
    return x


def _dsl_logsumexp(p: _Problem, multi: str, temperature: float) -> torch.Tensor:
    """``logsumexp_c(sim[c, v, j] / temperature)`` over all captions: ``(V, J)``, streamed."""
    if not temperature > 0:
        raise ValueError(f"dsl_temperature must be > 0; got {temperature!r}")
    lse = None
    for start, stop in _chunks(p.num_captions, p.chunk):
        part = torch.logsumexp(_scores(p, start, stop, multi, None, temperature) / temperature, 0)
        lse = part if lse is None else torch.logaddexp(lse, part)
    return lse


# Positives. With int labels the one positive per caption is gathered directly; with a mask
# (multi-positive datasets) the (n, V) rows of the mask are used. Each helper returns, besides
# the best positive score, how many positives tie with it: they are counted by ">=" and must be
# taken out again, since positives never count against a query.


def _mask_rows(p: _Problem, start: int, stop: int) -> torch.Tensor:
    return torch.as_tensor(p.mask[start:stop]).to(p.device)[..., None]  # (n, V, 1) bool


def _own_score(p: _Problem, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Score of each caption's labelled video: ``(n, J)``."""
    idx = p.labels[start:stop, None, None].expand(-1, 1, x.shape[2])  # (n, 1, J)
    return x.gather(1, idx)[:, 0]


def _best_video(p: _Problem, x: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, Any]:
    """t2v: best positive score per caption ``(n, 1, J)`` and #positives tied with it ``(n, J)``."""
    if p.labels is not None:
        return _own_score(p, x, start, stop)[:, None], 1
    pos = _mask_rows(p, start, stop)
    best = x.masked_fill(~pos, -math.inf).amax(1, keepdim=True)
    return best, ((x == best) & pos).sum(1)


def _best_caption(p: _Problem, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """v2t pass 1: best score among each video's captions in this block, ``(V, J)``."""
    if p.labels is None:
        return x.masked_fill(~_mask_rows(p, start, stop), -math.inf).amax(0)
    own = _own_score(p, x, start, stop)  # (n, J)
    idx = p.labels[start:stop, None].expand_as(own)
    empty = torch.full((p.num_videos, x.shape[2]), -math.inf, dtype=x.dtype, device=x.device)
    return empty.scatter_reduce(0, idx, own, reduce="amax")


def _tied_captions(
    p: _Problem, x: torch.Tensor, best: torch.Tensor, start: int, stop: int
) -> torch.Tensor:
    """v2t: how many of each video's captions in this block score exactly its best, ``(V, J)``."""
    if p.labels is None:
        return ((x == best) & _mask_rows(p, start, stop)).sum(0)
    labels = p.labels[start:stop]
    tied = (_own_score(p, x, start, stop) == best[labels]).long()  # (n, J)
    return torch.zeros_like(best, dtype=torch.int64).index_add_(0, labels, tied)


def _counts(x: torch.Tensor, best: torch.Tensor, dim: int, ties: str) -> list[Any]:
    """[#scores > best, #scores >= best] along ``dim`` (positives included); only what ``ties`` needs."""
    above = (x > best).sum(dim) if ties != "pessimistic" else 0
    at_or_above = (x >= best).sum(dim) if ties != "optimistic" else 0
    return [above, at_or_above]


def _finish(
    above: Any, at_or_above: Any, tied_positives: Any, ties: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Ranks ``(n,)`` from the negatives strictly above / at-or-above the best positive ``(n, J)``,
    and, for ``ties="mean"``, each query's probability of being within each K ``(n, len(RECALL_AT))``.

    Random tie-break: ``m`` positives (``tied_positives``) and ``t`` negatives share the best score
    in random order; N, the number of those negatives placed before the first positive, has
    ``P(N >= j) = prod_{i<j} (t - i) / (m + t - i)`` and mean ``t / (m + 1)``, and rank = 1 +
    above + N. J runs (``min_rank``) keep the best rank and break their ties independently.
    """
    if ties == "optimistic":
        return (1 + above).amin(1).cpu().numpy(), None
    if ties == "pessimistic":
        return (1 + at_or_above).amin(1).cpu().numpy(), None
    above, tied = above.double(), (at_or_above - above).double()  # (n, J)
    m = torch.as_tensor(tied_positives, dtype=torch.float64, device=above.device)
    rank = (1 + above + tied / (m + 1)).amin(1)
    at_least = [torch.ones_like(tied)]  # at_least[j] = P(N >= j), j = 0 .. max K
    for i in range(max(RECALL_AT)):
        step = torch.where(tied > i, (tied - i) / (m + tied - i).clamp(min=1), 0.0)
        at_least.append(at_least[-1] * step)
    table = torch.stack(at_least, -1)  # (n, J, max K + 1)
    within = []
    for k in RECALL_AT:  # rank <= K  <=>  N < K - above
        j = (k - above).clamp(0, max(RECALL_AT)).long()  # (n, J)
        below = 1 - table.gather(-1, j[..., None])[..., 0]
        within.append(torch.where(k - above > 0, below, 0.0))
    miss = (1 - torch.stack(within, -1)).prod(1)  # (n, len(RECALL_AT)): every run misses
    return rank.cpu().numpy(), (1 - miss).cpu().numpy()


def _group_scores(p: _Problem, groups: torch.Tensor | None, x: torch.Tensor, start: int, stop: int):
    """Caption groups: running max over each video's captions, ``(V groups, V videos, J)``."""
    if groups is None:
        groups = torch.full((p.num_videos, *x.shape[1:]), -math.inf, dtype=x.dtype, device=x.device)
    idx = p.labels[start:stop, None, None].expand_as(x)  # (n, V, J)
    return groups.scatter_reduce(0, idx, x, reduce="amax")


def _group_counts(groups: torch.Tensor, ties: str) -> list[Any]:
    """v2t by caption groups: [#other groups above, #other groups at or above] the own group."""
    own = groups.diagonal(dim1=0, dim2=1).T  # (V, J): video v's own group, scored on video v
    above, at_or_above = _counts(groups, own[None], 0, ties)
    return [above, at_or_above - 1 if ties != "optimistic" else 0, 1]  # own group ties itself


@torch.no_grad()
def _compute_ranks(
    p: _Problem,
    directions: tuple[str, ...],
    multi: str,
    ties: str,
    dsl: bool,
    temperature: float,
    v2t: str = "all_captions",
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{direction: (ranks, hits)}`` (hits only for ``ties="mean"``), sharing the passes over ``sim``."""
    lse = _dsl_logsumexp(p, multi, temperature) if dsl else None

    def blocks() -> Iterator[tuple[int, int, torch.Tensor]]:
        for start, stop in _chunks(p.num_captions, p.chunk):
            yield start, stop, _scores(p, start, stop, multi, lse, temperature)

    by_groups = "v2t" in directions and v2t == "caption_groups"
    best_caption = groups = None
    if "v2t" in directions and not by_groups:  # pass 1: each video's best own caption, per run j
        for start, stop, x in blocks():
            own = _best_caption(p, x, start, stop)  # (V, J)
            best_caption = own if best_caption is None else torch.maximum(best_caption, own)

    t2v_counts: list[tuple[Any, Any, Any]] = []
    v2t_counts: list[Any] = [0, 0, 0]
    for start, stop, x in blocks():  # pass 2: counts
        if "t2v" in directions:
            best, tied = _best_video(p, x, start, stop)
            above, at_or_above = _counts(x, best, 1, ties)  # (n, J)
            t2v_counts.append((above, at_or_above - tied, tied))
        if by_groups:
            groups = _group_scores(p, groups, x, start, stop)
        elif best_caption is not None:
            above, at_or_above = _counts(x, best_caption, 0, ties)  # (V, J)
            tied = _tied_captions(p, x, best_caption, start, stop) if ties != "optimistic" else 0
            v2t_counts = [
                v2t_counts[0] + above,
                v2t_counts[1] + at_or_above - tied,
                v2t_counts[2] + tied,
            ]

    out = {}
    if "t2v" in directions:
        out["t2v"] = _finish(*_stack(t2v_counts), ties=ties)
    if "v2t" in directions:
        out["v2t"] = _finish(*(_group_counts(groups, ties) if by_groups else v2t_counts), ties=ties)
    return out


def _stack(blocks: list[tuple[Any, ...]]) -> list[Any]:
    """Per-block ``(n, J)`` counts -> all captions; counts that ``ties`` does not need stay ints."""
    return [
        torch.cat([c.reshape(len(c), -1) for c in col]) if torch.is_tensor(col[0]) else col[0]
        for col in zip(*blocks, strict=True)
    ]
