"""Text sides on cached inputs: exact start at the frozen embedding, gradients only where they
should go, learning in a few steps, and every side with every temporal head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vrlib.encoders import eot_index, load_clip, text_inputs
from vrlib.losses import ContrastiveLoss
from vrlib.models import MODELS, build_model
from vrlib.models.text_side import TEXT_SIDES, build_text_side

CAPTIONS = [
    "a red circle moves left",
    "a big blue square",
    "x",
    "a small green triangle grows and then shrinks",
    "a yellow star appears on the right",
    "the purple circle disappears",
]


@pytest.fixture(scope="module")
def encoder():
    return load_clip("vrlib-tiny", device="cpu")


@pytest.fixture(scope="module")
def inputs(encoder):
    """Cached inputs with hidden states at the input of the last block (for blocks=1)."""
    return text_inputs(encoder, CAPTIONS, hidden_block=2)


def build(name: str, encoder, **cfg):
    torch.manual_seed(0)
    return build_text_side(name, encoder=encoder, dim=encoder.embed_dim, **cfg)


def test_registry_and_unknown_names(encoder):
    assert TEXT_SIDES.names() == ["adapter", "frozen", "last_blocks"]
    with pytest.raises(KeyError, match="valid: adapter, frozen, last_blocks"):
        build_text_side("lora")
    with pytest.raises(TypeError, match="'adapter'.*blocks"):
        build_text_side("adapter", dim=128, blocks=2)
    with pytest.raises(ValueError, match="pass encoder"):
        build_text_side("last_blocks", dim=128)
    with pytest.raises(ValueError, match=r"blocks must be in \[1, 3\]"):
        build_text_side("last_blocks", encoder=encoder, dim=128, blocks=4)


def test_cached_inputs_match_the_encoder(encoder, inputs):
    tokens, mask = encoder.encode_text_tokens(CAPTIONS)
    assert torch.equal(inputs["text"], encoder.encode_text(CAPTIONS))
    assert torch.equal(inputs["tokens"], tokens) and torch.equal(inputs["token_mask"], mask)
    c, n_ctx = len(CAPTIONS), tokens.shape[1]
    assert inputs["hidden"].shape == (c, n_ctx, 128)
    short = text_inputs(encoder, CAPTIONS, trim=True)
    assert short["tokens"].shape[1] == int(mask.sum(1).max()) < n_ctx
    assert "hidden" not in short and torch.equal(short["text"], inputs["text"])
    batched = text_inputs(encoder, CAPTIONS, hidden_block=2, batch_size=4)
    for key, value in inputs.items():  # tower calls of another size round differently
        torch.testing.assert_close(batched[key], value, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="hidden_block must be in"):
        text_inputs(encoder, CAPTIONS, hidden_block=3)


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_last_blocks_starts_exactly_at_the_frozen_embedding(encoder, blocks):
    side = build("last_blocks", encoder, blocks=blocks)
    assert side.hidden_block == 3 - blocks and side.input_keys == ("hidden", "token_mask")
    cached = text_inputs(encoder, CAPTIONS, hidden_block=side.hidden_block)
    out = side(cached)  # with gradients enabled, as in training
    assert torch.equal(out["text"], encoder.encode_text(CAPTIONS))
    assert torch.equal(out["tokens"], cached["tokens"])
    sub = side({k: v[[4, 1]] for k, v in cached.items()})  # another batch: rounding only
    torch.testing.assert_close(sub["text"], out["text"][[4, 1]], atol=1e-6, rtol=0)


def test_trimmed_inputs_agree_up_to_rounding(encoder):
    side = build("last_blocks", encoder, blocks=2)
    short = text_inputs(encoder, CAPTIONS, hidden_block=side.hidden_block, trim=True)
    torch.testing.assert_close(side(short)["text"], short["text"], atol=1e-6, rtol=0)


def test_zero_init_adapter_and_frozen_return_the_cached_features(encoder, inputs):
    frozen = build("frozen", encoder)(inputs)
    adapted = build("adapter", encoder)(inputs)
    expected, valid = F.normalize(inputs["text"], dim=-1), inputs["token_mask"]
    for out in (frozen, adapted):  # (padding may be zeroed: no head reads it)
        assert torch.equal(out["text"], expected)
        assert torch.equal(out["tokens"][valid], inputs["tokens"][valid])
        assert torch.equal(out["token_mask"], inputs["token_mask"])
    nudged = build("adapter", encoder, init_scale=1e-3)(inputs)["text"]
    assert 0 < (nudged - expected).abs().max() < 0.05  # small, not zero


def test_frozen_without_tokens_returns_text_only(encoder, inputs):
    out = build("frozen", encoder)({"text": inputs["text"]})
    assert set(out) == {"text"}
    with pytest.raises(KeyError, match="needs cached inputs \\['tokens', 'token_mask'\\]"):
        build("adapter", encoder)({"text": inputs["text"]})


def test_eot_index_is_the_last_valid_position_and_rejects_holes():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert eot_index(mask).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"rows \[0, 1\]"):
        eot_index(torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool))


@pytest.mark.parametrize("name", ["adapter", "last_blocks"])
def test_gradients_reach_only_the_trainable_parameters(encoder, inputs, name):
    side = build(name, encoder, init_scale=1e-3) if name == "adapter" else build(name, encoder)
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    out = side(inputs)
    video = F.normalize(torch.randn(len(CAPTIONS), encoder.embed_dim), dim=-1)
    loss = ContrastiveLoss()(out["text"] @ video.T) + out["tokens"].square().mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in side.parameters())
    assert all(p.grad is None for p in encoder.model.parameters())
    assert all(torch.equal(v, encoder.model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", ["adapter", "last_blocks"])
def test_a_few_contrastive_steps_lower_the_loss(encoder, inputs, name):
    """Random unit video embeddings as targets; only the text side (and no temperature) trains."""
    side = build(name, encoder)
    video = F.normalize(
        torch.randn(len(CAPTIONS), encoder.embed_dim, generator=torch.Generator().manual_seed(0)),
        dim=-1,
    )
    loss_fn = ContrastiveLoss(temperature=0.05, learnable=False)
    opt = torch.optim.AdamW(side.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = loss_fn(side(inputs)["text"] @ video.T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("head_name", MODELS.names())
@pytest.mark.parametrize("side_name", ["frozen", "adapter", "last_blocks"])
def test_every_text_side_works_with_every_head(encoder, inputs, head_name, side_name):
    torch.manual_seed(0)
    head = build_model(head_name, dim=encoder.embed_dim, num_frames=4)
    side = (
        build(side_name, encoder, init_scale=1e-3)
        if side_name == "adapter"
        else build(side_name, encoder)
    )
    b = len(CAPTIONS)
    frames = F.normalize(torch.randn(b, 4, encoder.embed_dim), dim=-1)
    mask = torch.ones(b, 4, dtype=torch.bool)
    ts = head.text_side(**side(inputs))
    sim = head.similarity(ts, head.video_side(frames, mask))
    assert sim.shape == (b, b) and torch.isfinite(sim).all()
    ContrastiveLoss()(sim).backward()
    assert all(p.grad is not None for p in side.parameters())
