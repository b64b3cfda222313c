"""Frame embeddings -> video embedding(s), zero-shot (Portillo-Quintero et al. 2021).

``aggregate(frame_features, method, **options)`` takes one video's frame embeddings ``(T, d)``
or a list of them ``[(T_i, d), ...]`` (numpy or torch, any device) and returns the same kind:

- ``single(index=0)``: the embedding of one frame. ``index`` is a position in the given
  frames, not a time: the caller picks it from its sampling (e.g. the frame nearest 1 s, the
  paper's 30th frame at 30 fps); an int for every video, or one int per video; negative
  indices count from the end; out of range is an error. -> ``(d,)`` / ``(N, d)``.
- ``mean()``: the mean of the L2-normalised frames (Mithun et al.'s average). -> ``(d,)`` / ``(N, d)``.
- ``kmeans(k=2, seed=0, iters=20)``: ``k`` centroids of spherical (cosine) k-means.
  -> ``(k, d)`` / ``(N, k, d)``. Details below.

Every output is L2-normalised along ``d``. A video with no frames (T = 0) is a ValueError naming
it. Adding a method is one function with the signature ``(frames (N, T, d), mask (N, T), **opts)
-> Tensor`` under ``@AGGREGATIONS.register("name")``; the padding and type handling is shared.

k-means, precisely
    Frames are L2-normalised; a frame joins the centroid of highest cosine similarity and a
    centroid is the re-normalised mean of its frames (spherical k-means). Initialisation is
    greedy k-means++ on the unit vectors (candidates drawn with probability proportional to their
    squared distance ``2 - 2 cos`` to the nearest chosen centroid, uniformly if all distances are
    0; of ``2 + ln k`` candidates the one leaving the least total distance wins, as in
    scikit-learn). The draws are uniforms from a CPU ``torch.Generator`` seeded with ``seed``
    and shared by every video, so a video gets the same centroids alone or in a
    batch, on CPU or CUDA. It stops after ``iters`` updates or when no assignment changes; an
    empty cluster keeps its previous centroid. Videos are processed together (padded + masked).
    Centroids come in k-means++ draw order. Computed in float64; scores within ``TIE_TOL``
    are ties won by the lowest index and distances below it count as 0, so the ~1e-7 rounding
    differences of features computed on another CPU cannot change a choice.

    Fewer frames than centroids (T < k): the output is still ``(k, d)``: centroid ``j`` is frame
    ``j mod T`` (all T frames, then repeated cyclically). Duplicated embeddings change neither
    ``max_sim`` nor ``min_rank`` retrieval (see ``vrlib.metrics``), so this is the neutral choice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vrlib.registry import Registry

Aggregation = Callable[..., torch.Tensor]
AGGREGATIONS: Registry[Aggregation] = Registry("aggregation")

FrameFeatures = np.ndarray | torch.Tensor


def aggregate(
    frame_features: FrameFeatures | Sequence[FrameFeatures], method: str, **options: Any
) -> FrameFeatures:
    """Aggregate one video ``(T, d)`` or a list of videos with the registered ``method``.

    Args:
        frame_features: ``(T, d)`` array/tensor, or a list of ``(T_i, d)`` (same kind, same d).
        method: a name in ``AGGREGATIONS`` (single, mean, kmeans).
        **options: the method's options (``index`` for single; ``k``, ``seed``, ``iters`` for kmeans).

    Returns:
        Same kind as the input (numpy or torch on the input's device): ``(d,)`` / ``(k, d)`` for one
        video, ``(N, d)`` / ``(N, k, d)`` for a list; L2-normalised.
    """
    fn = AGGREGATIONS.get(method)
    _check_options(method, fn, options)
    one_video = isinstance(frame_features, np.ndarray | torch.Tensor)
    videos = [frame_features] if one_video else list(frame_features)
    frames, mask, as_numpy = _pad(videos)
    out = fn(frames, mask, **options)
    if one_video:
        out = out[0]
    return out.cpu().numpy() if as_numpy else out


def _check_options(method: str, fn: Aggregation, options: dict[str, Any]) -> None:
    valid = [n for n in inspect.signature(fn).parameters if n not in ("frames", "mask")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"aggregation {method!r} got unknown option(s) {unknown}; valid: {valid}")


def _pad(videos: list[FrameFeatures]) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Stack ``(T_i, d)`` videos into ``frames (N, T_max, d)`` and ``mask (N, T_max)``."""
    if not videos:
        raise ValueError("frame_features is an empty list; expected (T, d) or a list of (T_i, d)")
    kinds = {isinstance(v, np.ndarray) for v in videos}
    for i, v in enumerate(videos):
        if not isinstance(v, np.ndarray | torch.Tensor):
            raise TypeError(f"frame_features[{i}] is a {type(v).__name__}; expected numpy or torch")
        if v.ndim != 2:
            raise ValueError(f"frame_features[{i}] has shape {tuple(v.shape)}; expected (T, d)")
        if v.shape[0] == 0:
            raise ValueError(f"frame_features[{i}] has no frames (T=0); nothing to aggregate")
        if v.shape[1] != videos[0].shape[1]:
            raise ValueError(
                f"frame_features[{i}] has d={v.shape[1]} but frame_features[0] has d={videos[0].shape[1]}"
            )
    if len(kinds) > 1:
        raise TypeError("frame_features mixes numpy arrays and torch tensors; pass one kind")
    tensors = [torch.as_tensor(v) for v in videos]
    dtype = torch.float64 if all(t.dtype == torch.float64 for t in tensors) else torch.float32
    device = tensors[0].device
    lengths = torch.tensor([t.shape[0] for t in tensors], device=device)
    frames = torch.zeros(
        len(tensors), int(lengths.max()), tensors[0].shape[1], dtype=dtype, device=device
    )
    for i, t in enumerate(tensors):
        frames[i, : t.shape[0]] = t.to(device=device, dtype=dtype)  # (N, T, d), zero padded
    mask = torch.arange(frames.shape[1], device=device) < lengths[:, None]  # (N, T)
    return frames, mask, kinds == {True}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


@AGGREGATIONS.register("single")
def single(
    frames: torch.Tensor, mask: torch.Tensor, index: int | Sequence[int] = 0
) -> torch.Tensor:
    """The frame at position ``index`` of each video (one int, or one per video) -> ``(N, d)``."""
    lengths = mask.sum(1)  # (N,)
    idx = torch.as_tensor(index, dtype=torch.int64, device=frames.device).flatten()
    if idx.numel() == 1:
        idx = idx.expand(len(frames))
    elif idx.numel() != len(frames):
        raise ValueError(f"single: index has {idx.numel()} entries for {len(frames)} videos")
    pos = torch.where(idx < 0, idx + lengths, idx)
    bad = torch.nonzero((pos < 0) | (pos >= lengths)).flatten()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"single: index {int(idx[i])} is out of range for video {i} with T={int(lengths[i])} frames"
        )
    return _unit(frames[torch.arange(len(frames), device=frames.device), pos])


@AGGREGATIONS.register("mean")
def mean(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the L2-normalised frames, re-normalised -> ``(N, d)``."""
    x = _unit(frames) * mask[..., None]  # (N, T, d), padding zeroed
    return _unit(x.sum(1) / mask.sum(1, keepdim=True))


@AGGREGATIONS.register("kmeans")
def kmeans(
    frames: torch.Tensor, mask: torch.Tensor, k: int = 2, seed: int = 0, iters: int = 20
) -> torch.Tensor:
    """``k`` spherical k-means centroids per video -> ``(N, k, d)`` (see the module docstring)."""
    if not (isinstance(k, int | np.integer) and k >= 1):
        raise ValueError(f"kmeans: k must be an int >= 1; got {k!r}")
    if not (isinstance(iters, int | np.integer) and iters >= 1):
        raise ValueError(f"kmeans: iters must be an int >= 1; got {iters!r}")
    x = _unit(frames.double()) * mask[..., None]  # (N, T, d)
    centers = _kmeans_pp(x, mask, k, seed)  # (N, k, d)
    previous = None
    for _ in range(iters):
        assign = _first_best(torch.einsum("ntd,nkd->ntk", x, centers))  # (N, T)
        if previous is not None and bool((assign == previous)[mask].all()):
            break
        members = F.one_hot(assign, k).to(x.dtype) * mask[..., None]  # (N, T, k)
        sums = torch.einsum("ntk,ntd->nkd", members, x)  # (N, k, d)
        filled = members.sum(1)[..., None] > 0  # (N, k, 1)
        centers = torch.where(filled, _unit(sums), centers)
        previous = assign
    return _repeat_short_videos(x, mask, centers).to(frames.dtype)


# Scores closer than this are a tie, decided by the lowest index. Why: features of one video
# computed on two CPUs differ by ~1.5e-7 (other SIMD kernels; measured with
# ATEN_CPU_CAPABILITY=avx2 vs avx512). Near-duplicate frames make exact-looking ties, which that
# noise decided differently per machine: 8 of 60 videos got other k=10 centroids and t2v R@1
# moved by up to 1.8 points. Deciding ties by index, and treating distances below the tolerance
# as zero, removes that noise from every choice.
TIE_TOL = 1e-5


def _first_best(scores: torch.Tensor, largest: bool = True) -> torch.Tensor:
    """Index of the best score along the last dim; scores within ``TIE_TOL`` of it tie -> lowest."""
    best = scores.amax(-1, keepdim=True) if largest else scores.amin(-1, keepdim=True)
    close = (scores - best).abs() <= TIE_TOL
    return close.to(torch.uint8).argmax(-1)  # first True


def _kmeans_pp(x: torch.Tensor, mask: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Greedy k-means++ seeding of unit vectors ``x (N, T, d)`` -> ``(N, k, d)``.

    Each new centroid is the best of ``2 + ln k`` D^2-weighted candidates (the one leaving the
    smallest total squared distance), as scikit-learn does: plain k-means++ puts two centroids
    in one clear cluster a few percent of the time, and Lloyd iterations cannot undo that.
    The uniforms come from one seeded CPU generator and are shared by every video.
    """
    trials = 2 + int(np.log(k))
    gen = torch.Generator().manual_seed(int(seed))
    draws = torch.rand(k, trials, generator=gen, dtype=torch.float64).to(x.device)
    rows = torch.arange(len(x), device=x.device)[:, None]  # (N, 1)
    last = (mask.sum(1) - 1)[:, None]  # (N, 1)
    nearest = None  # (N, T) squared distance to the nearest chosen centroid
    chosen = []
    for step in range(k):
        weight = mask.double() if nearest is None else nearest * mask
        total = weight.sum(1, keepdim=True)  # (N, 1)
        weight = torch.where(total > 0, weight, mask.double())  # all at distance 0: uniform
        cdf = weight.cumsum(1)  # (N, T)
        targets = draws[step] * cdf[:, -1:]  # (N, trials)
        cand = torch.minimum(torch.searchsorted(cdf, targets, right=True), last)  # (N, trials)
        cos = torch.einsum("ntd,ncd->nct", x, x[rows, cand])  # (N, trials, T)
        cand_dist = (2 - 2 * cos).double()
        cand_dist = torch.where(cand_dist < TIE_TOL, 0.0, cand_dist)  # rounding noise is 0
        after = cand_dist if nearest is None else torch.minimum(nearest[:, None], cand_dist)
        best = _first_best((after * mask[:, None]).sum(2), largest=False)  # (N,)
        pick = cand[rows[:, 0], best]  # (N,)
        chosen.append(x[rows[:, 0], pick])
        nearest = after[rows[:, 0], best]
    return torch.stack(chosen, 1)  # (N, k, d)


def _repeat_short_videos(
    x: torch.Tensor, mask: torch.Tensor, centers: torch.Tensor
) -> torch.Tensor:
    """Videos with T < k: centroid j = frame j mod T (the documented rule)."""
    k = centers.shape[1]
    lengths = mask.sum(1)
    short = torch.nonzero(lengths < k).flatten()
    for i in short.tolist():
        centers[i] = x[i, torch.arange(k, device=x.device) % lengths[i]]
    return centers


def average_over_offsets(
    embeddings: Sequence[torch.Tensor] | torch.Tensor,
) -> torch.Tensor:
    """Frozen in Time's test-time video embedding: the mean over stride offsets, re-normalised.

    Embed every video once per offset of ``vrlib.data.sampling.stride_offsets`` (the same head
    on each offset's frames), then average here. Why embeddings and not similarities: the
    paper averages the video embeddings ("the mean of these video embeddings is used as the
    final embedding"), and a cosine with the re-normalised mean ranks videos differently from a
    mean of cosines (each video's mean has its own norm). For a head with several similarity
    terms (TAB's ``video`` and ``video_aligned``) average each key of the video side on its own.

    Args:
        embeddings: (O, N, D), or a list of O tensors (N, D): offset o's embedding of video n.

    Returns:
        (N, D) L2-normalised mean of the L2-normalised embeddings.
    """
    stacked = torch.stack(list(embeddings)) if not torch.is_tensor(embeddings) else embeddings
    if stacked.ndim != 3 or stacked.shape[0] == 0:
        raise ValueError(
            f"expected (offsets, videos, D) embeddings, got shape {tuple(stacked.shape)}"
        )
    return _unit(_unit(stacked).mean(dim=0))  # (N, D)
