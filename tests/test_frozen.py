"""The space-time transformer (vrlib.models.frozen): shapes, image = one-frame video, the clip's
one CLS against a brute-force masked attention, the per-frame ablation's zero-temporal init equals
the image tower mean-pooled, temporal expansion, FLOP counting."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _frozen_micro import register_micro

from vrlib.models.frozen import (
    FrozenConfig,
    FrozenInTime,
    build_frozen,
    count_flops,
    expand_temporal_embedding,
    load_frozen_config,
)
from vrlib.models.space_time_blocks import SelfAttention, SpaceTimeBlock


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """(model, encoder): a micro space-time model (one CLS per clip, the paper's) built from a
    randomly initialised micro CLIP."""
    name = register_micro(tmp_path_factory.mktemp("cfg"))
    return build_frozen(FrozenConfig(clip_model=name, max_frames=8))


@pytest.fixture(scope="module")
def micro_frame(micro):
    """The same weights with one CLS per frame (the ablation), outputs averaged."""
    model, encoder = micro
    config = FrozenConfig(clip_model=model.config.clip_model, max_frames=8, cls="frame")
    return FrozenInTime.from_clip(encoder.model, config), encoder


def _pixels(b: int, t: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _image_tower_mean(clip, pixels: torch.Tensor) -> torch.Tensor:
    b, t = pixels.shape[:2]
    per_frame = F.normalize(clip.encode_image(pixels.flatten(0, 1)), dim=-1).view(b, t, -1)
    return F.normalize(per_frame.mean(dim=1), dim=-1)


def _perturb_temporal(model: FrozenInTime, seed: int = 1) -> FrozenInTime:
    """A copy whose temporal attention and embeddings are no longer zero."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for blk in model.visual.blocks:
            w = blk.attn_time.out_proj.weight
            w.copy_(0.3 * torch.randn(w.shape, generator=gen))
        t = model.visual.temporal_embedding
        t.copy_(0.5 * torch.randn(t.shape, generator=gen))
    return model


@pytest.mark.parametrize("frames", [1, 4, 8])
def test_shapes_for_1_4_8_frames(micro, micro_frame, frames):
    for (model, _), outputs in ((micro, 1), (micro_frame, frames)):
        assert model.visual(_pixels(3, frames)).shape == (3, outputs, 32)
        video = model.encode_video(_pixels(3, frames))
        assert video.shape == (3, 32)
        assert torch.allclose(video.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("over", ["time", "space"])
def test_clip_cls_attention_equals_a_masked_full_attention(over):
    """The CLS sees every token; a patch sees the CLS and its own group (position or frame)."""
    torch.manual_seed(0)
    attn = SelfAttention(16, 2)
    frames, patches = 3, 4
    x = torch.randn(2, 1 + frames * patches, 16)
    frame_of = torch.arange(frames * patches) // patches
    position_of = torch.arange(frames * patches) % patches
    group = position_of if over == "time" else frame_of
    allowed = torch.ones(1 + frames * patches, 1 + frames * patches, dtype=torch.bool)
    allowed[1:, 1:] = group[:, None] == group[None, :]
    q, k, v = attn._qkv(x)
    brute = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    brute = attn.out_proj(brute.transpose(1, 2).reshape(x.shape))
    torch.testing.assert_close(attn.grouped(x, frames, over), brute, atol=1e-5, rtol=0)


def test_clip_cls_equals_the_image_tower_for_one_frame_and_mixes_frames_for_more(micro):
    model, encoder = micro
    x = _pixels(3, 4)
    with torch.no_grad():
        one = model.encode_video(x[:, :1])
        image = F.normalize(encoder.model.encode_image(x[:, 0]), dim=-1)
        four, mean = model.encode_video(x), _image_tower_mean(encoder.model, x)
        other_last = model.encode_video(torch.cat([x[:, :3], _pixels(3, 1, seed=5)], dim=1))
    torch.testing.assert_close(one, image, atol=2e-6, rtol=0)
    assert (four - mean).abs().max() > 1e-3  # not the mean pooling, even at zero temporal init
    assert (four - other_last).abs().max() > 1e-4  # the CLS reads the last frame too


def test_more_frames_than_the_table_fails(micro):
    model, _ = micro
    with pytest.raises(ValueError, match="9 frames but the model has 8"):
        model.encode_video(_pixels(1, 9))


def test_image_equals_its_one_frame_video(micro):
    model = _perturb_temporal(micro[0])  # non-zero temporal weights: the same path still holds
    x = _pixels(4, 1)
    assert torch.equal(model.encode_image(x[:, 0]), model.encode_video(x))


def test_zero_temporal_attention_equals_the_image_tower_mean_pooled(micro_frame):
    model, encoder = micro_frame
    x = _pixels(3, 4)
    with torch.no_grad():
        ours = model.encode_video(x)
        expert = _image_tower_mean(encoder.model, x)
        changed = _perturb_temporal(model).encode_video(x)
    torch.testing.assert_close(ours, expert, atol=2e-6, rtol=0)
    assert (changed - expert).abs().max() > 1e-3  # the comparison can fail


def test_zero_temporal_model_is_order_blind_and_a_trained_one_is_not(micro, micro_frame):
    x = _pixels(2, 4)
    rev = x.flip(1)
    for model, _ in (micro, micro_frame):
        with torch.no_grad():
            torch.testing.assert_close(
                model.encode_video(x), model.encode_video(rev), atol=2e-6, rtol=0
            )
            timed = _perturb_temporal(model)
            assert (timed.encode_video(x) - timed.encode_video(rev)).abs().max() > 1e-3


def test_text_tower_is_the_experts(micro):
    model, encoder = micro
    ids = encoder.tokenizer(["a red circle moves left", "a blue square grows"])
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_text(ids), F.normalize(encoder.model.encode_text(ids), dim=-1)
        )
    assert any(p.requires_grad for p in model.text.parameters())


def test_block_styles_agree_at_zero_temporal_init_and_differ_after():
    torch.manual_seed(0)
    frozen = SpaceTimeBlock(32, 2, block="frozen")
    frozen.zero_temporal_()
    times = SpaceTimeBlock(32, 2, block="timesformer")
    times.load_state_dict(frozen.state_dict())
    x = torch.randn(2, 3, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), times(x))
        for blk in (frozen, times):
            blk.attn_time.out_proj.weight.fill_(0.05)
        assert (frozen(x) - times(x)).abs().max() > 1e-4


def test_loading_a_tower_of_another_geometry_fails(micro):
    model, _ = micro
    other = build_frozen(FrozenConfig(clip_model="vrlib-tiny-vit32"))[1].model.visual
    with pytest.raises(ValueError, match="shape"):
        copy.deepcopy(model.visual).load_image_tower(other)


# ----------------------------------------------------------------------------- expansion


def test_zeros_expansion_pads_with_zeros():
    table = torch.arange(8.0).view(4, 2)
    out = expand_temporal_embedding(table, 8, "zeros")
    assert torch.equal(out[:4], table) and torch.equal(out[4:], torch.zeros(4, 2))


def test_nearest_expansion_duplicates_rows():
    table = torch.arange(8.0).view(4, 2)
    out = expand_temporal_embedding(table, 8, "nearest")
    assert torch.equal(out, table[[0, 0, 1, 1, 2, 2, 3, 3]])
    assert torch.equal(expand_temporal_embedding(table[:1], 4, "nearest"), table[[0, 0, 0, 0]])


def test_bilinear_expansion_samples_half_pixel_positions_as_the_reference():
    table = torch.tensor([[0.0, 10.0], [3.0, 4.0]])
    out = expand_temporal_embedding(table, 4, "bilinear")  # old positions 0, 0.25, 0.75, 1
    expected = torch.tensor([[0.0, 10.0], [0.75, 8.5], [2.25, 5.5], [3.0, 4.0]])
    torch.testing.assert_close(out, expected)
    four = torch.randn(4, 3)
    eight = expand_temporal_embedding(four, 8, "bilinear")
    torch.testing.assert_close(eight[[0, -1]], four[[0, -1]])  # clamped at the ends
    torch.testing.assert_close(eight[1], four[0] + (four[1] - four[0]) * 0.25)  # position 0.25
    # frozen-in-time resizes the (1, 1, m, D) table as an image, bilinear, default corners
    image = torch.nn.functional.interpolate(four[None, None], size=(8, 3), mode="bilinear")
    torch.testing.assert_close(eight, image[0, 0])
    torch.testing.assert_close(expand_temporal_embedding(four[:1], 4, "bilinear"), four[[0] * 4])


def test_expansion_rejects_shrinking_and_unknown_methods():
    with pytest.raises(ValueError, match="fewer"):
        expand_temporal_embedding(torch.zeros(4, 2), 2, "zeros")
    with pytest.raises(ValueError, match="cubic"):
        expand_temporal_embedding(torch.zeros(4, 2), 8, "cubic")


def test_table_sizes_read_the_learned_rows_only(micro):
    model = copy.deepcopy(micro[0])
    assert model.temporal_table_rms() == 0.0  # zero at init
    with torch.no_grad():
        model.visual.temporal_embedding.fill_(2.0)  # rows beyond the learned ones do not count
        model.visual.temporal_embedding[:2].zero_()
        model.visual.temporal_embedding[1, :4] = 3.0
    model.frames = 2
    assert model.temporal_table_rms() == pytest.approx((36.0 / 2) ** 0.5)  # rows 0 and 1
    pos = model.visual.positional_embedding.detach()
    assert model.positional_rms() == pytest.approx(float(pos.pow(2).sum(1).mean().sqrt()))


def test_expand_frames_writes_the_table_in_place(micro):
    model = copy.deepcopy(micro[0])
    table = model.visual.temporal_embedding
    with torch.no_grad():
        table[0] = 1.0
    model.expand_frames(4, "nearest")
    assert model.visual.temporal_embedding is table and model.frames == 4
    assert torch.equal(table[:4], torch.ones(4, 32)) and torch.equal(table[4:], torch.zeros(4, 32))


# ----------------------------------------------------------------------------- config and FLOPs


def test_configs_are_data_and_reject_unknown_keys(tmp_path):
    cfg = load_frozen_config("frozen-tiny")
    assert cfg.clip_model == "vrlib-tiny-vit32" and cfg.block == "frozen" and cfg.zero_temporal
    bad = tmp_path / "frozen-bad.json"
    bad.write_text('{"clip_model": "vrlib-tiny", "frames": 8}')
    with pytest.raises(ValueError, match="unknown key"):
        load_frozen_config(bad)
    with pytest.raises(FileNotFoundError, match="frozen-tiny"):
        load_frozen_config("frozen-nope")
    with pytest.raises(ValueError, match="block"):
        load_frozen_config("frozen-tiny", block="joint")
    with pytest.raises(ValueError, match="cls"):
        load_frozen_config("frozen-tiny", cls="patch")


@pytest.mark.parametrize("frames", [1, 4])
def test_flop_count_of_one_block_matches_the_analytic_count(frames):
    b, patches, dim = 2, 5, 32  # 5 tokens per frame: CLS + 4 patches
    block = SpaceTimeBlock(dim, heads=4)
    x = torch.randn(b, frames, patches, dim)
    tokens = b * frames * patches
    linear = (
        2 * tokens * (2 * (3 * dim * dim + dim * dim) + 2 * 4 * dim * dim)
    )  # qkv+out twice, mlp
    attention = 2 * 2 * tokens * dim * (frames + patches)  # QK^T and AV over time, then space
    assert count_flops(lambda: block(x)) == linear + attention
    # the backward pass of a matrix product costs twice its forward
    both = count_flops(lambda: block(x.requires_grad_()).sum().backward())
    assert both == 3 * (linear + attention)
