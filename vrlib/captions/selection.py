"""Which pseudo-captions of a video to train on: the selection rules of Ventura et al. 2024.

A rule reads one video's CLIPScores (I captioners x M frames) and returns the flat indices
(``captioner * M + frame``) of its *candidate set*; training then draws one caption of the set
per video per epoch (:func:`draw`). Splitting the rule (fixed, testable, cacheable) from the draw
(new every epoch, seeded by (seed, epoch)) is what lets Rand(M) be "a random caption of the M,
each epoch" while Top 1 always gives the same caption.

The paper's rules, as registered here (``k`` is the rule's K):

| paper | rule | candidate set per video |
|---|---|---|
| Rand(M) | ``rand_m`` | all M captions of each captioner |
| Middle 1 | ``middle_1`` | the caption of frame ``M // 2`` of each captioner |
| Top 1 | ``top_1`` | each captioner's best-scored caption |
| Rand(Top K) | ``rand_top_k`` | each captioner's K best-scored captions |
| C+B | ``rand_top_k`` with I = 2 | union of the top K of each captioner |
| pooled top K | ``pooled_top_k`` | the K best of all M x I pooled (the paper's weaker variant) |

With one captioner (I = 1) ``rand_top_k`` is the paper's Rand(Top K); with ClipCap and BLIP
(I = 2) it is their combination C+B. Ties in score keep the earlier index (stable sort), so a
rule's output never depends on the platform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vrlib.captions.labels import Candidates
from vrlib.registry import Registry

SelectionRule = Callable[[np.ndarray, int], np.ndarray]
SELECTION_RULES: Registry[SelectionRule] = Registry("caption selection rule")


def _per_captioner_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of each captioner's ``k`` best captions; scores (I, M)."""
    _, m = scores.shape
    if not 1 <= k <= m:
        raise ValueError(f"k must be in 1..{m} (frames per captioner), got {k}")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (I, k)
    return (np.arange(len(scores))[:, None] * m + order).reshape(-1)


@SELECTION_RULES.register("rand_m")
def rand_m(scores: np.ndarray, k: int = 1) -> np.ndarray:
    """Rand(M): every caption is a candidate (``k`` is ignored)."""
    return np.arange(scores.size)


@SELECTION_RULES.register("middle_1")
def middle_1(scores: np.ndarray, k: int = 1) -> np.ndarray:
    """Middle 1: the caption of the middle frame ``M // 2`` of each captioner (``k`` ignored)."""
    i, m = scores.shape
    return np.arange(i) * m + m // 2


@SELECTION_RULES.register("top_1")
def top_1(scores: np.ndarray, k: int = 1) -> np.ndarray:
    """Top 1: each captioner's best-scored caption (``k`` ignored)."""
    return _per_captioner_top(scores, 1)


@SELECTION_RULES.register("rand_top_k")
def rand_top_k(scores: np.ndarray, k: int = 2) -> np.ndarray:
    """Rand(Top K) per captioner; with several captioners, the union of their top K (C+B)."""
    return _per_captioner_top(scores, k)


@SELECTION_RULES.register("pooled_top_k")
def pooled_top_k(scores: np.ndarray, k: int = 2) -> np.ndarray:
    """The K best of all I x M captions pooled (one captioner may take every place)."""
    if not 1 <= k <= scores.size:
        raise ValueError(f"k must be in 1..{scores.size} (captions per video), got {k}")
    return np.argsort(-scores.reshape(-1), kind="stable")[:k]


@dataclass
class Selection:
    """Each video's candidate pseudo-captions under one rule.

    Attributes:
        rule, k: the rule and its K.
        video_ids: V ids.
        indices: V int64 arrays of flat indices (``captioner * M + frame``) into the candidates.
        captions: V lists of the selected caption texts (same order as ``indices``).
    """

    rule: str
    k: int
    video_ids: list[str]
    indices: list[np.ndarray]
    captions: list[list[str]]


def select(candidates: Candidates, rule: str, k: int = 1) -> Selection:
    """Apply a registered rule to every video (KeyError lists the valid rules)."""
    fn = SELECTION_RULES.get(rule)
    indices, captions = [], []
    for v in range(len(candidates.video_ids)):
        flat = [c for per_captioner in candidates.captions[v] for c in per_captioner]  # (I * M,)
        idx = np.asarray(fn(candidates.scores[v], k), dtype=np.int64)
        indices.append(idx)
        captions.append([flat[i] for i in idx])
    return Selection(rule, k, list(candidates.video_ids), indices, captions)


def draw(selection: Selection, epoch: int, seed: int = 0) -> list[str]:
    """One caption per video for this epoch, uniform over its candidate set.

    The generator is seeded by (seed, epoch), so the same epoch always draws the same captions,
    and a resumed training run sees the captions an uninterrupted one would.
    """
    rng = np.random.default_rng([seed, epoch])
    return [c[int(rng.integers(len(c)))] for c in selection.captions]
