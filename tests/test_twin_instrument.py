"""The twin instrument: the same cached frame features in reverse; order-blind models tie at 50%."""

from __future__ import annotations

import pytest
import torch

from vrlib.models import build_model, order_blind
from vrlib.models.base import masked_mean
from vrlib.models.reversal import reversal_twin_accuracy, reverse_frames

V, T, D, C = 9, 6, 32, 27


@pytest.fixture()
def batch() -> dict:
    gen = torch.Generator().manual_seed(0)
    frames = torch.nn.functional.normalize(torch.randn(V, T, D, generator=gen), dim=-1)
    mask = torch.ones(V, T, dtype=torch.bool)
    mask[0, 4:] = False  # uneven lengths: padding must stay at the end
    mask[3, 2:] = False
    text = torch.nn.functional.normalize(torch.randn(C, D, generator=gen), dim=-1)
    return {"frames": frames, "mask": mask, "text": text, "c2v": torch.arange(C) % V}


def test_reverse_frames_reverses_valid_frames_and_keeps_padding(batch: dict) -> None:
    rev, mask = reverse_frames(batch["frames"], batch["mask"])
    for v in range(V):
        n = int(batch["mask"][v].sum())
        assert torch.equal(rev[v, :n], batch["frames"][v, :n].flip(0))
        assert torch.equal(rev[v, n:], batch["frames"][v, n:])
    twice, _ = reverse_frames(rev, mask)
    assert torch.equal(twice, batch["frames"])


@pytest.mark.parametrize("name", ["meanP", "seqTransf", "tdb"])
def test_order_blind_models_score_exactly_fifty(batch: dict, name: str) -> None:
    head = order_blind(build_model(name, dim=D, num_frames=T)) if name != "meanP" else None
    models = [lambda f, m: masked_mean(f, m)] if head is None else [head]
    if name == "meanP":
        models.append(build_model("meanP", dim=D, num_frames=T))
    for model in models:
        out = reversal_twin_accuracy(
            model, batch["text"], batch["frames"], batch["mask"], batch["c2v"]
        )
        assert out["twin_acc"] == 50.0 and out["ties"] == 1.0 and out["n"] == C


def test_an_order_aware_head_is_not_tied(batch: dict) -> None:
    torch.manual_seed(0)
    head = build_model("early-late", dim=D, num_frames=T)
    out = reversal_twin_accuracy(head, batch["text"], batch["frames"], batch["mask"], batch["c2v"])
    assert out["ties"] < 1.0 and out["twin_acc"] != 50.0


def test_caption_mask_selects_captions(batch: dict) -> None:
    head = build_model("early-late", dim=D, num_frames=T)
    keep = torch.arange(C) < 5
    out = reversal_twin_accuracy(
        head, batch["text"], batch["frames"], batch["mask"], batch["c2v"], caption_mask=keep.numpy()
    )
    assert out["n"] == 5
    assert out["twin_acc"] == pytest.approx(100.0 * out["scores"][:5].mean())
