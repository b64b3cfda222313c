"""Study 04's word-swap instrument: does a model tie a shape's or a colour's word to what is on
screen?

Why: Table 2's mechanism (the images carry a concept the training videos lack) moves T2V R@1 on
the videos of that concept by less than the test split can resolve, because a caption says much
besides the held-out word (colour, shape, motion, place, background). This instrument isolates
the word, as the reversed twins isolate order: each caption of a test video that shows one of the
held-out shapes (or colours) and names it is scored against the same caption with that word
swapped for another held-out one, one the video does not show. 1 where the own caption scores
higher, 1/2 on a tie, 0 below.

A model blind to the words can still prefer one to another for reasons of the text alone; each
swap is weighted so that every ordered pair of words (cross -> diamond, diamond -> cross, ...)
counts the same, and such a preference then cancels: blind scores 50%.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def word_kind(words: Sequence[str]) -> str:
    """What the held-out ``words`` are, for the claims and the reading: "shape" or "colour" when
    all are of one kind (the embedded world's ``SHAPES`` / ``COLOURS``), else "word"."""
    from vrlib.data.synthetic import COLOURS, SHAPES

    if words and all(w in SHAPES for w in words):
        return "shape"
    if words and all(w in COLOURS for w in words):
        return "colour"
    return "word"


@dataclass(frozen=True)
class WordSwaps:
    """Swapped captions of a test split.

    Attributes:
        rows: (S,) the test caption each swap was made from.
        texts: the S swapped captions.
        pairs: (word named, word swapped in) of each swap.
        weights: (S,) each swap's weight, mean 1, equal in total for every ordered pair.
    """

    rows: np.ndarray
    texts: list[str]
    pairs: list[tuple[str, str]]
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def swap_word(caption: str, old: str, new: str) -> str:
    """``caption`` with the whole word ``old`` replaced by ``new``, its article agreeing."""
    article = "an" if new[0] in "aeiou" else "a"
    text = re.sub(rf"\b(?:a|an) {old}\b", f"{article} {new}", caption)
    return re.sub(rf"\b{old}\b", new, text)


def word_swaps(captions: Sequence[str], caption_to_video: Sequence[int],
               shown: Sequence[set[str]], held_out: Sequence[str]) -> WordSwaps:  # fmt: skip
    """Every swap of a caption that names exactly one of ``held_out``, one its video shows
    (``shown[v]``), into each other of ``held_out`` its video does not show.

    A caption naming two of them is left out: swapping one into the other says nothing new.
    """
    if len(set(held_out)) < 2:
        raise ValueError(f"word swaps need at least two held-out words, got {list(held_out)}")
    words = {w: re.compile(rf"\b{w}\b") for w in held_out}
    rows, texts, pairs = [], [], []
    for row, (caption, video) in enumerate(zip(captions, caption_to_video, strict=True)):
        named = [w for w in held_out if words[w].search(caption)]
        if len(named) != 1 or named[0] not in shown[video]:
            continue
        for other in held_out:
            if other != named[0] and other not in shown[video]:
                rows.append(row)
                texts.append(swap_word(caption, named[0], other))
                pairs.append((named[0], other))
    return WordSwaps(np.asarray(rows, dtype=np.int64), texts, pairs, _balanced(pairs))


def _balanced(pairs: list[tuple[str, str]]) -> np.ndarray:
    """Weights with mean 1 under which every ordered pair of words has the same total."""
    if not pairs:
        return np.zeros(0)
    count = Counter(pairs)
    return np.array([len(pairs) / (len(count) * count[p]) for p in pairs])


def swap_scores(own: np.ndarray, swapped: np.ndarray, swaps: WordSwaps) -> np.ndarray:
    """Per swap: its weight x (1 where the own caption scores its video above the swapped
    caption, 1/2 on a tie, 0 below); the mean over swaps is the balanced swap accuracy.

    ``own`` and ``swapped``: (S,) each swap's own caption's and swapped caption's similarity
    with the caption's video.
    """
    from vrlib.models.reversal import order_scores

    return swaps.weights * order_scores(np.asarray(own), np.asarray(swapped))
