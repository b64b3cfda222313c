"""The twin instrument: can a head tell a video from the same frame features played backwards?

Why: the world's reversed twins are separate mp4 files, sampled and decoded on their own, so the
frames a sampler picks from a twin are never exactly the original's in reverse (issue 18: 0 of 60
test pairs under ``clip2video`` sampling). An order-blind model then scores 46.5% on twins instead
of 50%, a bias as large as the effects being measured. This instrument removes it: it feeds a
head the *same cached frame features* of each video, once in order and once reversed, and asks
whether a caption scores its video's true order above the reversed one. Every order-blind head
(mean pooling, any head wrapped by ``order_blind``) then ties on every caption and scores exactly
50%; only a head that reads order can move away from it.

A tie is a difference within ``atol`` (relative to the score): a mean over reversed frames sums
the same numbers in another order, which changes the last bits of a float32 result.

``reversal_twin_accuracy`` takes either a :class:`~vrlib.models.base.TemporalHead` (scored
with its own ``text_side``, ``video_side`` and ``similarity``) or a plain
``encode_video(frames, mask) -> (V, D)`` function (scored by cosine with caption embeddings),
so it serves trained heads and zero-shot aggregations alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrlib.models.base import TemporalHead

TIE_ATOL = 1e-5  # relative difference below which two scores count as a tie


def reverse_frames(frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Each video's valid frames in reverse order, padding left where it was (at the end).

    Args:
        frames: (B, T, D) features, valid frames first.
        mask: (B, T) bool, True on valid frames.
    """
    mask = mask.bool()
    lengths = mask.sum(1, keepdim=True)  # (B, 1)
    t = torch.arange(frames.shape[1], device=frames.device)[None, :]  # (1, T)
    source = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    return frames.gather(1, source[..., None].expand_as(frames)), mask


@torch.no_grad()
def _similarities(
    model: TemporalHead | Callable[[Tensor, Tensor], Tensor],
    text: Tensor | dict[str, Tensor],
    frames: Tensor,
    mask: Tensor,
    frames_2x: Tensor | None,
    mask_2x: Tensor | None,
) -> Tensor:
    """(C, V) similarities of the captions with the videos as given."""
    if isinstance(model, TemporalHead):
        was = model.training
        model.eval()
        text_side = text if isinstance(text, dict) else model.text_side(text)
        video_side = model.video_side(frames, mask, frames_2x, mask_2x)
        sim = model.similarity(text_side, video_side)
        model.train(was)
        return sim
    emb = torch.nn.functional.normalize(model(frames, mask).float(), dim=-1)  # (V, D)
    return torch.nn.functional.normalize(torch.as_tensor(text).float(), dim=-1) @ emb.T


def reversal_twin_scores(
    model: TemporalHead | Callable[[Tensor, Tensor], Tensor],
    text: Tensor | dict[str, Tensor],
    frames: Tensor,
    mask: Tensor,
    caption_to_video: Any,
    *,
    frames_2x: Tensor | None = None,
    mask_2x: Tensor | None = None,
    atol: float = TIE_ATOL,
) -> np.ndarray:
    """Per caption: 1 if it scores its video above the same features reversed, 1/2 on a tie, 0
    below. ``(C,)`` float64.

    Args:
        model: a temporal head, or ``encode_video(frames (V,T,D), mask (V,T)) -> (V, D)``.
        text: (C, D) caption embeddings (for a head: its ``text_side`` input, or the text-side
            dict it already returned).
        frames, mask: (V, T, D) and (V, T) cached frame features of the videos.
        caption_to_video: (C,) index of each caption's video.
        frames_2x, mask_2x: the double-rate stream of heads that read one (reversed alike).
        atol: relative tolerance of a tie (:data:`TIE_ATOL`).
    """
    forward = _similarities(model, text, frames, mask, frames_2x, mask_2x)
    rev, rev_mask = reverse_frames(frames, mask)
    rev_2x = reverse_frames(frames_2x, mask_2x) if frames_2x is not None else (None, None)
    backward = _similarities(model, text, rev, rev_mask, *rev_2x)
    return own_video_order_scores(forward, backward, caption_to_video, atol)


def own_video_order_scores(
    sim: Any, sim_reversed: Any, caption_to_video: Any, atol: float = TIE_ATOL
) -> np.ndarray:
    """:func:`order_scores` of each caption with its own video: ``sim`` and ``sim_reversed`` are
    the (C, V) similarities with the videos in order and with their frames reversed. ``(C,)``."""
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    sim, sim_reversed = torch.as_tensor(sim), torch.as_tensor(sim_reversed)
    if sim.shape != sim_reversed.shape or sim.ndim != 2 or sim.shape[0] != len(c2v):
        raise ValueError(f"sim {tuple(sim.shape)} and sim_reversed {tuple(sim_reversed.shape)} "
                         f"must both be (C, V) with C = {len(c2v)}")  # fmt: skip
    rows = torch.arange(len(c2v))
    return order_scores(sim[rows, c2v], sim_reversed[rows, c2v], atol)


def order_scores(forward: Tensor, backward: Tensor, atol: float = TIE_ATOL) -> np.ndarray:
    """Per caption: 1 where its score with its video in true order is above the score with the
    same frames reversed, 1/2 on a tie (within ``atol`` relative), 0 below. ``(C,)`` float64."""
    forward, backward = torch.as_tensor(forward).double(), torch.as_tensor(backward).double()
    tie = (forward - backward).abs() <= atol * forward.abs().clamp_min(1.0)
    score = (forward > backward).double()
    return torch.where(tie, torch.full_like(score, 0.5), score).cpu().numpy()


def reversal_twin_accuracy(
    model: TemporalHead | Callable[[Tensor, Tensor], Tensor],
    text: Tensor | dict[str, Tensor],
    frames: Tensor,
    mask: Tensor,
    caption_to_video: Any,
    caption_mask: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`reversal_twin_scores` averaged over the captions in ``caption_mask`` (default all).

    Returns:
        ``{"twin_acc": percent, "n": captions, "ties": share of them tied, "scores": (C,)}``;
        ``twin_acc`` is exactly 50 for any order-blind model.
    """
    scores = reversal_twin_scores(model, text, frames, mask, caption_to_video, **kwargs)
    keep = np.ones(len(scores), bool) if caption_mask is None else np.asarray(caption_mask, bool)
    if not keep.any():
        return {"twin_acc": float("nan"), "n": 0, "ties": float("nan"), "scores": scores}
    return {
        "twin_acc": float(100.0 * scores[keep].mean()),
        "n": int(keep.sum()),
        "ties": float((scores[keep] == 0.5).mean()),
        "scores": scores,
    }
