"""Order-blind controls (vrlib.models.controls): order-invariant by construction, same parts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vrlib.models import MODELS, build_model, order_blind
from vrlib.models.controls import canonical_direction, canonical_order

D, T, B = 32, 6, 3


def unit(*shape: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def per_video_shuffle(frames: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
    """Each video's valid frames permuted independently (padding stays where it is)."""
    g = torch.Generator().manual_seed(seed)
    out = frames.clone()
    for b in range(frames.shape[0]):
        n = int(mask[b].sum())
        out[b, :n] = frames[b, torch.randperm(n, generator=g)]
    return out


def test_canonical_order_depends_only_on_the_set_of_valid_frames():
    frames = unit(B, T, D)
    mask = torch.arange(T)[None] < torch.tensor([T, 4, 1])[:, None]
    d = canonical_direction(D)
    a, ma = canonical_order(frames, mask, d)
    b, mb = canonical_order(per_video_shuffle(frames, mask, 5), mask, d)
    assert torch.equal(ma, mb) and torch.equal(a[ma], b[mb])
    assert ma[:, 0].all() and torch.equal(ma.sum(1), mask.sum(1))  # valid frames first
    keys = a @ d
    for i in range(B):  # increasing projection over the valid frames
        n = int(mask[i].sum())
        assert bool((keys[i, 1:n] >= keys[i, : n - 1]).all())


@pytest.mark.parametrize("name", MODELS.names())
def test_every_control_is_order_invariant_and_its_head_is_not(name):
    torch.manual_seed(0)
    head = build_model(name, dim=D, num_frames=T).eval()
    control = order_blind(head).eval()
    frames, frames_2x = unit(B, T, D), unit(B, 2 * T, D, seed=4)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask_2x = torch.ones(B, 2 * T, dtype=torch.bool)
    text = torch.randn(B, D, generator=torch.Generator().manual_seed(2))
    tokens = torch.randn(B, 5, D, generator=torch.Generator().manual_seed(3))
    token_mask = torch.ones(B, 5, dtype=torch.bool)
    reverse = torch.arange(T - 1, -1, -1)

    def sim(model, f, f2):
        v = model.video_side(f, mask, f2, mask_2x)
        t = model.text_side(text, tokens, token_mask)
        return model.similarity(t, v)

    with torch.no_grad():
        base = sim(control, frames, frames_2x)
        twin = sim(control, frames[:, reverse], frames_2x.flip(1))
        shuffled = sim(
            control, per_video_shuffle(frames, mask, 7), per_video_shuffle(frames_2x, mask_2x, 8)
        )
        assert torch.equal(base, twin) and torch.equal(base, shuffled)  # exactly: ties
        if name != "meanP":
            assert (sim(head, frames, frames_2x) - sim(head, frames[:, reverse], frames_2x.flip(1))).abs().max() > 1e-4  # fmt: skip


def test_control_keeps_the_heads_parameters_and_flags():
    head = build_model("tdb+tab-tdb", dim=D, num_frames=T, extra_frames="double_rate")
    control = order_blind(head)
    assert all(p is q for p, q in zip(control.parameters(), head.parameters(), strict=True))
    assert control.needs_tokens == head.needs_tokens
    assert control.needs_double_rate == head.needs_double_rate
    assert set(control.state_dict()) == {f"inner.{k}" for k in head.state_dict()}
    with pytest.raises(ValueError, match="already an order-blind control"):
        order_blind(control)


def test_half_masks_split_each_videos_valid_frames():
    from vrlib.models.probes import half_masks

    mask = torch.arange(5)[None] < torch.tensor([4, 3, 1, 5])[:, None]
    early, late = half_masks(mask)
    assert early.int().tolist() == [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0] * 5, [1, 1, 0, 0, 0]]
    assert torch.equal(early | late, mask) and not (early & late).any()
