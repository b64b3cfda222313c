"""Chunked ranking: counts of negatives above each query's best positive, block by block.

Why chunked: ``sim`` at MSR-VTT Full scale (59,800 x 2,990) or larger must never be sorted,
copied or transposed as a whole; every pass here touches ``chunk`` caption rows at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from vrlib.metrics.inputs import _Problem
from vrlib.metrics.protocol import RECALL_AT


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
