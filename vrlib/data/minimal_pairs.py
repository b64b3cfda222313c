"""Hard negatives from the world's attribute structure: images that differ in one stated attribute.

Why: in a random batch of the expert's pretraining, almost every other image differs from an
image in several attributes, so the contrastive loss is satisfied by coarse cues (the background,
the shape) and the model never learns to bind a colour or a position to its object. A *minimal
pair* (same scene except one attribute: "a red circle on the left" vs "a blue circle on the
left") can only be told apart by that attribute. Batches that hold an image together with such a
partner teach exactly what the captions test.

The partner must differ in an attribute the image's caption *states*: a partner that differs only
in a size the caption leaves out fits the caption as well as the image does, and contrasting it
would teach the model to ignore captions' words. Which attributes a caption states is read from
the caption itself with the world's own phrase tables (``vrlib.data.synthetic``).

A still of motion is paired with its reversed twin instead (same scene, the events played
backwards, the opposite direction words): in random batches the two rarely meet, so nothing
makes the expert tell "moves to the left" from "moves to the right".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vrlib.data.synthetic import BACKGROUND_PHRASES, POSITION_PHRASES

_OBJECT_KEYS = ("shape", "colour", "size", "position")


def image_records(world_dir: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The ``images.jsonl`` rows of one split, in file order (the order of ``load_image_captions``)."""
    path = Path(world_dir) / "annotations" / "images.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == split]


def stated(caption: str, attributes: dict[str, Any]) -> set[tuple]:
    """Attribute slots the caption states: ``("background",)`` or ``(object index, key)``."""
    out: set[tuple] = set()
    if any(p in caption for p in BACKGROUND_PHRASES.get(attributes.get("background"), ())):
        out.add(("background",))
    words = caption.split()
    for i, obj in enumerate(attributes.get("objects", [])):
        out.add((i, "shape"))
        for key in ("colour", "size"):
            if obj.get(key) in words:
                out.add((i, key))
        if any(p in caption for p in POSITION_PHRASES.get(obj.get("position"), ())):
            out.add((i, "position"))
    return out


def _signature(attributes: dict[str, Any], wildcard: tuple | None) -> str:
    """The scene's words with one slot replaced by ``*`` (objects sorted: order is invisible)."""
    objects = []
    for i, obj in enumerate(attributes.get("objects", [])):
        objects.append(tuple("*" if wildcard == (i, k) else obj.get(k) for k in _OBJECT_KEYS))
    background = "*" if wildcard == ("background",) else attributes.get("background")
    return json.dumps([background, sorted(objects)])


def partner_lists(records: list[dict[str, Any]]) -> list[list[int]]:
    """For each image, the other images that differ from it in exactly one slot, a slot that both
    captions state (the symmetric loss contrasts each caption with the other image too).

    A still of motion (a record with a ``twin``, ``vrlib.data.synthetic.motion``) has one
    partner, its reversed twin, when the twin is among ``records`` and their captions differ
    (a caption that says nothing of the events fits both): the pair differs only in the
    direction of its events. Its attributes (the last panel's scene) take no part in the slots.
    Records without attributes (a world made elsewhere) get no partners.
    """
    index = {r.get("image_id"): i for i, r in enumerate(records) if r.get("image_id")}
    out: list[set[int]] = [set() for _ in records]
    by_key: dict[str, list[int]] = {}
    exact = []
    for i, r in enumerate(records):
        attributes = r.get("attributes") or {}
        exact.append(_signature(attributes, None))
        if r.get("twin") is not None:
            j = index.get(r["twin"])
            if j is not None and records[j]["caption"] != r["caption"]:
                out[i].add(j)
            continue
        if attributes.get("objects"):
            for slot in stated(r["caption"], attributes):
                by_key.setdefault(_signature(attributes, slot), []).append(i)
    for members in by_key.values():  # same scene but one slot, stated by every caption here
        for i in members:
            out[i].update(j for j in members if exact[j] != exact[i])
    return [sorted(p) for p in out]


def hard_batches(
    order: torch.Tensor,
    partners: list[list[int]],
    batch_size: int,
    fraction: float,
    gen: torch.Generator,
) -> list[torch.Tensor]:
    """Batches of one epoch: anchors in ``order``, each batch topped up with minimal-pair partners.

    Each batch takes ``batch_size - round(fraction * batch_size)`` anchors from ``order`` (in
    turn) and fills the rest with a random partner of a random anchor (an anchor without partners
    gives a further image from ``order``), never repeating an image within a batch. There are
    ``len(order) // batch_size`` batches, as in random batching, so an epoch costs the same.
    """
    num_batches = len(order) // batch_size
    anchors_per = batch_size - round(fraction * batch_size)
    if fraction <= 0 or anchors_per >= batch_size:
        return [order[b * batch_size : (b + 1) * batch_size] for b in range(num_batches)]
    batches, cursor = [], 0
    for _ in range(num_batches):
        batch = [int(i) for i in order[cursor : cursor + anchors_per]]
        cursor += anchors_per
        members = set(batch)
        picks = torch.randint(0, 1 << 30, (batch_size * 2,), generator=gen).tolist()
        for pick in picks:
            if len(batch) == batch_size:
                break
            anchor = batch[pick % anchors_per]
            options = [j for j in partners[anchor] if j not in members]
            if options:
                j = options[(pick >> 8) % len(options)]
                batch.append(j)
                members.add(j)
        while len(batch) < batch_size:  # not enough partners: fill from the order, wrapping
            j = int(order[cursor % len(order)])
            cursor += 1
            if j not in members:
                batch.append(j)
                members.add(j)
        batches.append(torch.tensor(batch))
    return batches
