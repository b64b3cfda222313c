"""The best image-text retrieval any model could reach on a world's images, given its captions.

Why: the expert's held-out R@1 means little without its ceiling. The captions are ambiguous on
purpose ("a red circle" leaves size, position, background and sometimes colour unsaid), so even a
perfect model cannot tell which of the images consistent with a caption it was written for. The
world knows each image's attributes, and its caption generator (``synthetic.describe_scene``) is
code, so the ceiling can be computed exactly rather than estimated.

The ideal model scores a (text, image) pair by the likelihood ``P(text | image)`` that the world's
caption generator writes that text for that image. Ranking texts by it maximises the expected
image->text R@1, and (images being equally likely a priori) ranking images by it maximises the
expected text->image R@1, so it is the Bayes-optimal scorer in both directions. Every path
through the generator's random draws is enumerated by replaying scripted draws
(``_ScriptedDraws``), so the likelihood follows the generator's own code and cannot drift from it
(float sums rounded to 12 digits, so that equal likelihoods stay exactly equal).
The pixels show the objects but not the order the generator listed them in, so the likelihood of
a two-object image averages over both orders. Equal likelihoods are real ties (e.g. "a circle"
fits every image with one circle equally well), broken at random: ``vrlib.metrics`` with
``ties="mean"`` gives the expected R@K of that random tie-break, as the expert's own evaluation
(``vrlib.pretrain.evaluate_image_text``: distinct texts as queries, images with that caption as
positives) would count it.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from vrlib.data.synthetic import describe_scene


class _Comparison:
    """What ``rng.random()`` returns: ``random() < p`` records ``p`` and answers the scripted branch."""

    def __init__(self, draws: _ScriptedDraws) -> None:
        self.draws = draws

    def __lt__(self, p: float) -> bool:
        return self.draws.branch(2, (p, 1.0 - p)) == 0


class _ScriptedDraws:
    """A stand-in for ``numpy.random.Generator`` that takes the branches in ``script`` (then the
    first branch) and records every branch point, so a depth-first walk visits every path once."""

    def __init__(self, script: tuple[int, ...]) -> None:
        self.script = script
        self.taken: list[int] = []
        self.options: list[int] = []
        self.probability = 1.0

    def branch(self, n: int, probabilities: tuple[float, ...]) -> int:
        i = self.script[len(self.taken)] if len(self.taken) < len(self.script) else 0
        self.taken.append(i)
        self.options.append(n)
        self.probability *= probabilities[i]
        return i

    def random(self) -> _Comparison:
        return _Comparison(self)

    def integers(self, n: int) -> int:
        return self.branch(int(n), (1.0 / int(n),) * int(n))


def enumerate_outputs(generate: Callable[[_ScriptedDraws], Hashable]) -> dict[Hashable, float]:
    """Every output ``generate(draws)`` can return, with its probability.

    ``generate`` takes the random generator as its only argument and may call only
    ``random() < p`` and ``integers(n)`` on it (what the world's caption code does). Each path
    through its draws is visited once, depth first; outputs of different paths add up.
    """
    out: dict[Hashable, float] = {}
    pending: list[tuple[int, ...]] = [()]
    while pending:
        script = pending.pop()
        draws = _ScriptedDraws(script)
        output = generate(draws)
        for pos in range(len(script), len(draws.taken)):  # siblings of the default branches
            pending += [(*draws.taken[:pos], alt) for alt in range(1, draws.options[pos])]
        out[output] = out.get(output, 0.0) + draws.probability
    return out


def caption_distribution(attributes: dict[str, Any]) -> dict[str, float]:
    """Every caption ``describe_scene`` can write for these attributes, with its probability.

    Object order is averaged over (the pixels do not show it); probabilities sum to 1. They are
    rounded to 12 significant digits, so that equal likelihoods reached by sums in different
    orders compare equal (true differences are far larger: the draws' probabilities are simple
    fractions).
    """
    objects = attributes["objects"]
    orders = list(itertools.permutations(objects)) or [()]
    out: dict[str, float] = {}
    for order in orders:
        scene = {**attributes, "objects": list(order)}
        for text, p in enumerate_outputs(lambda draws, s=scene: describe_scene(s, draws)).items():
            out[text] = out.get(text, 0.0) + p / len(orders)
    return {text: float(f"{p:.12g}") for text, p in out.items()}


def likelihood_matrix(texts: list[str], attributes: list[dict[str, Any]]) -> np.ndarray:
    """``P(text | image)``: float64 ``(len(texts), len(attributes))``; images with the same
    attributes share one enumeration."""
    index = {t: i for i, t in enumerate(texts)}
    out = np.zeros((len(texts), len(attributes)))
    cache: dict[str, dict[str, float]] = {}
    for j, attr in enumerate(attributes):
        key = json.dumps(_words(attr), sort_keys=True)
        if key not in cache:
            cache[key] = caption_distribution(_words(attr))
        for text, p in cache[key].items():
            if text in index:
                out[index[text], j] = p
    return out


def _words(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes a caption can state (numbers such as x, y, radius dropped), objects sorted."""
    keep = ("shape", "colour", "size", "position")
    objects = sorted(({k: o[k] for k in keep} for o in attributes["objects"]), key=json.dumps)
    return {"background": attributes["background"], "objects": objects}


def ideal_recall(captions: list[str], attributes: list[dict[str, Any]]) -> dict[str, float]:
    """Expected R@1/5/10 of the ideal model, keyed like ``evaluate_image_text`` (``t2i_R@1``, ...).

    Args:
        captions: each image's caption (the held-out split's).
        attributes: each image's ``attributes`` record (images.jsonl).
    """
    from vrlib.metrics import evaluate

    if len(captions) != len(attributes) or not captions:
        raise ValueError(
            f"need one caption per image; got {len(captions)} captions, {len(attributes)} images"
        )
    texts = sorted(set(captions))
    index = {t: i for i, t in enumerate(texts)}
    positives = np.zeros((len(texts), len(captions)), dtype=bool)  # (C, V)
    positives[[index[c] for c in captions], np.arange(len(captions))] = True
    result = evaluate(likelihood_matrix(texts, attributes), positives, ties="mean")
    out = {f"t2i_R@{k}": result["t2v"][f"R@{k}"] for k in (1, 5, 10)}
    out.update({f"i2t_R@{k}": result["v2t"][f"R@{k}"] for k in (1, 5, 10)})
    return out


class MissingAttributes(ValueError):
    """The images carry no attribute records (a world not made by ``vrlib.data.synthetic``)."""


def world_ceiling(world_dir: str | os.PathLike, split: str = "val") -> dict[str, float]:
    """:func:`ideal_recall` on one image split of a world (``annotations/images.jsonl``).

    Raises:
        ValueError: no image in the split.
        MissingAttributes: an image without ``attributes`` (background and objects).
    """
    path = Path(world_dir) / "annotations" / "images.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == split]
    if not rows:
        raise ValueError(f"{path}: no images in split {split!r}")
    missing = [
        r.get("image_id")
        for r in rows
        if not {"background", "objects"} <= set(r.get("attributes") or {})
    ]
    if missing:
        raise MissingAttributes(f"{path}: images without attributes, e.g. {missing[:5]}")
    return ideal_recall([r["caption"] for r in rows], [r["attributes"] for r in rows])
