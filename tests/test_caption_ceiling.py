"""The retrieval ceiling of the world's images and the minimal-pair hard negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.data import caption_ceiling, minimal_pairs
from vrlib.data.synthetic import describe_scene


def scene(bg, *objects):
    keys = ("shape", "colour", "size", "position")
    return {"background": bg, "objects": [dict(zip(keys, o, strict=True)) for o in objects]}


A = scene("gray", ("circle", "red", "small", "left"))
B = scene("gray", ("circle", "blue", "small", "left"))
C = scene("gray", ("square", "red", "small", "right"))


def test_caption_distribution_is_the_generator_s():
    rng = np.random.default_rng(0)
    two = scene("stripes", ("star", "orange", "large", "top"), ("ring", "white", "small", "centre"))
    dist = caption_ceiling.caption_distribution(two)
    assert sum(dist.values()) == pytest.approx(1.0)
    assert all(describe_scene(two, rng) in dist for _ in range(200))  # every drawn caption
    flipped = {**two, "objects": two["objects"][::-1]}  # order is invisible in the pixels
    assert caption_ceiling.caption_distribution(flipped) == dist
    # "a circle": no background, size, colour or position (0.25 0.4 0.1 0.3), and two of the
    # four templates read the same without a background
    assert caption_ceiling.caption_distribution(A)["a circle"] == pytest.approx(
        0.25 * 0.4 * 0.1 * 0.3 * 0.5
    )


def test_ideal_recall_on_a_constructed_case():
    # "a circle" (B's caption) fits A and B equally: an ideal model finds B first half the time.
    # "a red circle" and "a red square" fit one image each. Image->text: A prefers "a red circle"
    # (its colour is said 9 times in 10) to "a circle", so each image's own caption comes first.
    out = caption_ceiling.ideal_recall(["a red circle", "a circle", "a red square"], [A, B, C])
    assert out["t2i_R@1"] == pytest.approx(100 * (0.5 + 1 + 1) / 3)
    assert out["i2t_R@1"] == pytest.approx(100.0)
    assert out["t2i_R@5"] == 100.0
    # a consistency-only scorer would tie A's two texts; the likelihood does not
    lik = caption_ceiling.likelihood_matrix(["a circle", "a red circle"], [A, B])
    assert lik[1, 0] > lik[0, 0] == lik[0, 1] > 0 and lik[1, 1] == 0


def test_ideal_recall_errors():
    with pytest.raises(ValueError, match="one caption per image"):
        caption_ceiling.ideal_recall(["a circle"], [A, B])


def test_world_without_attributes_has_no_ceiling(tmp_path):
    (tmp_path / "annotations").mkdir()
    row = '{"image_id": "i", "path": "x.png", "caption": "c", "split": "val", "attributes": {}}\n'
    (tmp_path / "annotations" / "images.jsonl").write_text(row)
    with pytest.raises(caption_ceiling.MissingAttributes, match="without attributes"):
        caption_ceiling.world_ceiling(tmp_path)


def record(caption, attributes):
    return {"caption": caption, "attributes": attributes}


def test_partners_differ_in_one_slot_both_captions_state():
    records = [
        record("a red circle on the left", A),
        record("a blue circle on the left", B),  # differs from 0 in the colour both state
        record("a circle on the left", B),  # 0's colour is unsaid here: not a partner of 0
        record("a red square on the right", C),  # differs in shape and position
        record("a red circle on the left", A),  # the same scene: never its own negative
    ]
    partners = minimal_pairs.partner_lists(records)
    assert partners[0] == [1] and partners[1] == [0, 4] and partners[4] == [1]
    assert partners[2] == [] and partners[3] == []
    assert minimal_pairs.partner_lists([record("x", {})]) == [[]]


def test_a_motion_still_s_one_partner_is_its_reversed_twin():
    still = {**A, "motion": {"style": "trail", "events": []}}  # the last panel's scene: A
    records = [
        {"image_id": "p", **record("a red circle on the left", A)},
        {"image_id": "m", "twin": "t", **record("a red circle moves to the left", still)},
        {"image_id": "t", "twin": "m", **record("a red circle moves to the right", still)},
        {"image_id": "s", "twin": "u", **record("a red circle", still)},  # fits both: no partner
        {"image_id": "u", "twin": "s", **record("a red circle", still)},
        {"image_id": "v", "twin": "w", **record("a blue circle on the left", B)},  # twin elsewhere
    ]
    # p and v would be a minimal pair (colour), but a still of motion pairs with its twin only
    assert minimal_pairs.partner_lists(records) == [[], [2], [1], [], [], []]


def test_hard_batches_hold_partners_and_cost_the_same():
    partners = [[i ^ 1] for i in range(40)]  # pairs (0, 1), (2, 3), ...
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(40, generator=gen)
    plain = minimal_pairs.hard_batches(order, partners, 8, 0.0, gen)
    assert [b.tolist() for b in plain] == [order[i : i + 8].tolist() for i in range(0, 40, 8)]
    batches = minimal_pairs.hard_batches(order, partners, 8, 0.5, torch.Generator().manual_seed(1))
    assert len(batches) == 5 and all(len(set(b.tolist())) == 8 for b in batches)
    paired = [sum(1 for i in b.tolist() if i ^ 1 in b.tolist()) for b in batches]
    assert min(paired) >= 4 and sum(paired) >= 30  # random batches of 8 from 40 hold ~1.4 pairs
    again = minimal_pairs.hard_batches(order, partners, 8, 0.5, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))
