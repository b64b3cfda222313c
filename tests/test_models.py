"""Temporal heads: one parametrized contract test over the whole MODELS registry, plus the
TDB / TAB specifics (difference range, masks, assignments, variant token sets, weighting)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vrlib.models import MODELS, TemporalHead, available_models, build_model
from vrlib.models.clip2video import TemporalDifferenceBlock, interleave

D, T, B, L = 32, 6, 3, 7
TAB_NAMES = ["tdb+tab-base", "tdb+tab-temporal", "tdb+tab-transformer", "tdb+tab-tdb"]
TDB_NAMES = ["tdb-sub", "tdb-mlp", "tdb", "tdb-all"]
ALL_NAMES = ["meanP", "seqTransf", *TDB_NAMES, *TAB_NAMES, "early-late"]


def make(name: str, **cfg) -> TemporalHead:
    torch.manual_seed(0)
    return build_model(name, dim=D, num_frames=T, **cfg).eval()


def unit(*shape: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def lengths_mask(lengths: list[int], n: int) -> torch.Tensor:
    return torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]  # (B, n)


@pytest.fixture()
def batch() -> dict[str, torch.Tensor]:
    """Variable-length videos and padded captions; the last text row has 4 video partners."""
    return {
        "frames": unit(B, T, D),
        "mask": lengths_mask([T, 4, 1], T),
        "text": torch.randn(B + 1, D, generator=torch.Generator().manual_seed(2)),
        "tokens": torch.randn(B + 1, L, D, generator=torch.Generator().manual_seed(3)),
        "token_mask": lengths_mask([L, 5, 2, 3], L),
    }


def sides(model: TemporalHead, b: dict[str, torch.Tensor]):
    v = model.video_side(b["frames"], b["mask"])
    t = model.text_side(b["text"], b["tokens"], b["token_mask"])
    return t, v


def test_registry_holds_exactly_the_study_variants():
    assert sorted(ALL_NAMES) == MODELS.names() == available_models()


@pytest.mark.parametrize("name", MODELS.names())
def test_shapes_norms_and_finiteness(name, batch):
    model = make(name)
    t, v = sides(model, batch)
    assert model.encode_video(batch["frames"], batch["mask"]).shape == (B, D)
    assert "video" in v and "text" in t
    for side, n in ((v, B), (t, B + 1)):
        for key, x in side.items():
            assert x.shape == (n, D), key
            assert torch.isfinite(x).all(), key
            torch.testing.assert_close(x.norm(dim=-1), torch.ones(n), msg=key)
    sim = model.similarity(t, v)
    assert sim.shape == (B + 1, B)
    assert torch.isfinite(sim).all()
    assert sim.abs().max() <= 1 + 1e-5  # a convex mix of cosines


@pytest.mark.parametrize("name", MODELS.names())
def test_padding_values_never_change_the_output(name, batch):
    model = make(name)
    t1, v1 = sides(model, batch)
    dirty = dict(batch)
    frames = batch["frames"].clone()
    frames[~batch["mask"]] = 1e4 * torch.randn(int((~batch["mask"]).sum()), D)
    frames[1, -1] = float("nan")  # padding of video 1
    tokens = batch["tokens"].clone()
    tokens[~batch["token_mask"]] = float("inf")
    dirty.update(frames=frames, tokens=tokens)
    t2, v2 = sides(model, dirty)
    for a, b in ((t1, t2), (v1, v2)):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", MODELS.names())
def test_padding_is_the_same_as_absence(name, batch):
    """Each padded video / caption gives what the same video / caption gives unpadded, alone:
    padded positions are neither attended to, pooled, nor assigned to TAB centers."""
    model = make(name)
    t, v = sides(model, batch)
    for i, n in enumerate(batch["mask"].sum(1).tolist()):
        alone = model.video_side(batch["frames"][i : i + 1, :n], torch.ones(1, n, dtype=torch.bool))
        for key in v:
            torch.testing.assert_close(v[key][i : i + 1], alone[key], msg=key)
    for i, n in enumerate(batch["token_mask"].sum(1).tolist()):
        tokens = batch["tokens"][i : i + 1, :n]
        alone = model.text_side(
            batch["text"][i : i + 1], tokens, torch.ones(1, n, dtype=torch.bool)
        )
        for key in t:
            torch.testing.assert_close(t[key][i : i + 1], alone[key], msg=key)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_parameter_gets_a_gradient_from_a_contrastive_loss(name):
    model = make(name).train()
    frames, mask = unit(4, T, D), torch.ones(4, T, dtype=torch.bool)  # all positions used
    tokens, token_mask = torch.randn(4, L, D), torch.ones(4, L, dtype=torch.bool)
    t = model.text_side(torch.randn(4, D), tokens, token_mask)
    sim = model.similarity(t, model.video_side(frames, mask)) * 20.0
    labels = torch.arange(4)
    loss = (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2
    params = dict(model.named_parameters())
    if name == "meanP":
        assert not params  # the engine must cope with a parameter-free head
        return
    loss.backward()
    missing = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", MODELS.names())
def test_frame_order_matters_except_for_meanP(name):
    model = make(name)
    frames = unit(B, T, D)
    mask = lengths_mask([T, 5, 4], T)
    perm = torch.tensor([3, 0, 2, 1, 4, 5])  # moves only frames valid in every video
    a = model.encode_video(frames, mask)
    b = model.encode_video(frames[:, perm], mask)
    change = (a - b).abs().max().item()
    if name == "meanP":
        assert change < 1e-6
    else:
        assert change > 1e-4, f"{name} output did not change under a frame permutation"


def test_order_test_is_sensitive_to_positions():
    """Negative control: seqTransf without its position embedding is order-blind, so the
    order test above passes for seqTransf only because positions are really used."""
    model = make("seqTransf")
    with torch.no_grad():
        model.frame_pos.zero_()
    frames, mask = unit(B, T, D), torch.ones(B, T, dtype=torch.bool)
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(0))
    a, b = model.encode_video(frames, mask), model.encode_video(frames[:, perm], mask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", MODELS.names())
def test_similarity_is_the_weighted_sum_of_its_parts(name, batch):
    model = make(name)
    t, v = sides(model, batch)
    parts, weights = model.similarity_parts(t, v), model.part_weights()
    assert parts.keys() == weights.keys()
    assert math.isclose(sum(weights.values()), 1.0)
    expected = sum(weights[k] * parts[k] for k in weights)
    torch.testing.assert_close(model.similarity(t, v), expected)
    torch.testing.assert_close(parts["global"], t["text"] @ v["video"].T)


@pytest.mark.parametrize("name", TAB_NAMES)
def test_tab_w1_reduces_to_global_and_w_mixes(name, batch):
    model = make(name, w=1.0)
    t, v = sides(model, batch)
    parts = model.similarity_parts(t, v)
    torch.testing.assert_close(model.similarity(t, v), parts["global"])
    assert not torch.allclose(parts["aligned"], parts["global"])
    half = make(name)  # paper default w = 0.5
    assert half.part_weights() == {"global": 0.5, "aligned": 0.5}


@pytest.mark.parametrize("name", MODELS.names())
def test_unknown_and_none_config_keys(name):
    with pytest.raises(TypeError, match="bogus"):
        build_model(name, dim=D, num_frames=T, bogus=1)
    model = build_model(name, dim=D, num_frames=T, layers=None, centers=None, w=None)
    assert model.config == make(name).config  # None keeps the head's own defaults
    assert model.name == name


def test_build_model_errors_name_the_problem():
    with pytest.raises(KeyError, match="valid: .*meanP.*tdb\\+tab-tdb"):
        build_model("tdb+tab")
    with pytest.raises(TypeError, match="difference"):
        build_model("tdb-sub", dim=D, difference="attention")  # fixed by the variant
    with pytest.raises(ValueError, match="w must be"):
        build_model("tdb+tab-tdb", dim=D, w=1.5)
    with pytest.raises(ValueError, match="heads=5 must divide dim=32"):
        build_model("seqTransf", dim=D, heads=5)
    with pytest.raises(ValueError, match="w must be"):
        build_model("tdb+tab-base", dim=D, w="half")
    with pytest.raises(ValueError, match="centers must be"):
        build_model("tdb+tab-base", dim=D, centers=0)
    with pytest.raises(ValueError, match="layers must be"):
        build_model("tdb", dim=D, layers=2.5)
    with pytest.raises(ValueError, match="extra_frames"):
        build_model("tdb+tab-tdb", dim=D, extra_frames="4x")


def test_paper_defaults():
    model = build_model("tdb+tab-tdb")
    c = model.config
    assert (c.dim, c.num_frames, c.layers, c.centers, c.w, c.heads) == (512, 12, 4, 5, 0.5, 8)
    assert len(model.transformer.blocks) == 4
    assert model.tab.assign_centers.shape == (5, 512)
    assert model.needs_tokens and not model.needs_double_rate
    assert not build_model("tdb", dim=D).needs_tokens


def test_bad_inputs_raise_clear_errors(batch):
    model = make("tdb")
    empty = batch["mask"].clone()
    empty[2] = False
    with pytest.raises(ValueError, match=r"rows \[2\] have no valid element"):
        model.encode_video(batch["frames"], empty)
    with pytest.raises(ValueError, match="does not match the head's dim=32"):
        model.encode_video(torch.randn(B, T, D + 1), batch["mask"])
    with pytest.raises(ValueError, match="build it with a larger num_frames"):
        model.encode_video(unit(B, T + 1, D), torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs_tokens"):
        make("tdb+tab-tdb").text_side(batch["text"])


def test_meanP_is_the_masked_mean_of_normalised_frames(batch):
    frames = batch["frames"] * torch.rand(B, T, 1) * 5  # not unit norm: meanP normalises
    out = make("meanP").encode_video(frames, batch["mask"])
    for i in range(B):
        valid = F.normalize(frames[i][batch["mask"][i]], dim=-1)
        torch.testing.assert_close(out[i], F.normalize(valid.mean(0), dim=0))


# --- TDB ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["attention", "mlp"])
def test_tdb_difference_tokens_lie_in_open_unit_interval(kind):
    torch.manual_seed(0)
    block = TemporalDifferenceBlock(D, heads=1, kind=kind)
    frames = torch.randn(B, T, D) * 50  # large differences: still inside (-1, 1)
    pos = torch.randn(T, D)
    diffs, d_mask = block(frames, torch.ones(B, T, dtype=torch.bool), pos)
    assert diffs.shape == (B, T - 1, D) and d_mask.all()
    assert diffs.abs().max() < 1
    assert diffs.std() > 0.1  # not collapsed to 0


def test_tdb_sub_inserts_raw_differences_and_masks_need_both_neighbours():
    block = TemporalDifferenceBlock(D, heads=1, kind="sub")
    frames, mask = torch.randn(2, 4, D), lengths_mask([4, 2], 4)
    diffs, d_mask = block(frames, mask, torch.zeros(4, D))
    torch.testing.assert_close(diffs, frames[:, 1:] - frames[:, :-1])
    assert d_mask.tolist() == [[True, True, True], [True, False, False]]
    holes = torch.tensor([[True, False, True, True]])
    assert TemporalDifferenceBlock.difference_mask(holes).tolist() == [[False, False, True]]


def test_interleave_puts_differences_between_frames():
    frames = torch.tensor([[0.0, 2.0, 4.0]])[..., None]  # (1, 3, 1)
    diffs = torch.tensor([[1.0, 3.0]])[..., None]  # (1, 2, 1)
    assert interleave(frames, diffs).flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_tdb_all_pools_difference_tokens_too():
    """Same weights, only the pooling differs: tdb-all must give a different embedding."""
    frames, mask = unit(B, T, D), lengths_mask([T, 4, 3], T)
    tdb, tdb_all = make("tdb"), make("tdb-all")
    tdb_all.load_state_dict(tdb.state_dict())
    a, b = tdb.encode_video(frames, mask), tdb_all.encode_video(frames, mask)
    assert (a - b).abs().max() > 1e-3
    out, t_mask = tdb.temporal_outputs(frames, mask)
    assert out.shape == (B, 2 * T - 1, D)
    assert t_mask[1].tolist() == [True] * 7 + [False] * 4  # 4 frames + 3 differences


@pytest.mark.parametrize("name", [*TDB_NAMES, *TAB_NAMES])
def test_single_frame_videos_work(name):
    model = make(name)
    out = model.encode_video(unit(2, 1, D), torch.ones(2, 1, dtype=torch.bool))
    assert out.shape == (2, D) and torch.isfinite(out).all()


# --- TAB ------------------------------------------------------------------------------------


def test_tab_assignments_sum_to_one_over_centers(batch):
    model = make("tdb+tab-tdb", centers=4)
    a = model.tab.assign(batch["tokens"])
    assert a.shape == (B + 1, L, 4)
    torch.testing.assert_close(a.sum(-1), torch.ones(B + 1, L))
    assert (a.max(-1).values > 0.3).any()  # not uniform at init


@pytest.mark.parametrize(
    ("name", "extra_count"),
    [("tdb+tab-base", 0), ("tdb+tab-temporal", 3), ("tdb+tab-transformer", 3), ("tdb+tab-tdb", 3)],
)
def test_tab_video_tokens_per_variant(name, extra_count, batch):
    """base aligns the T frames; the others add ceil(T/2) tokens from every second frame."""
    model = make(name)
    tokens, mask = model.alignment_tokens(batch["frames"], batch["mask"])
    assert tokens.shape == (B, T + extra_count, D)
    valid = batch["mask"]
    torch.testing.assert_close(tokens[:, :T][valid], batch["frames"][valid])  # frames as given
    assert not tokens[:, :T][~valid].any()  # padding zeroed
    assert mask[:, T:].tolist() == batch["mask"][:, ::2][:, :extra_count].tolist()
    # frames_2x is not needed (stride-2 resampling) and is ignored when given
    v1 = model.video_side(batch["frames"], batch["mask"])
    v2 = model.video_side(batch["frames"], batch["mask"], unit(B, 2 * T, D), None)
    torch.testing.assert_close(v1["video_aligned"], v2["video_aligned"])


def test_tab_temporal_shares_the_global_encoder():
    """TAB-Temporal adds no parameters over TAB-base; Transformer and TDB add a 1-layer one."""
    count = {n: sum(p.numel() for p in make(n).parameters()) for n in TAB_NAMES}
    assert count["tdb+tab-temporal"] == count["tdb+tab-base"]
    assert count["tdb+tab-transformer"] == count["tdb+tab-tdb"] > count["tdb+tab-base"]


def test_tab_double_rate_option_uses_frames_2x(batch):
    model = make("tdb+tab-tdb", extra_frames="double_rate")
    assert model.needs_double_rate
    with pytest.raises(ValueError, match="frames_2x"):
        model.video_side(batch["frames"], batch["mask"])
    frames_2x, mask_2x = unit(B, 2 * T, D, seed=5), lengths_mask([2 * T, 8, 2], 2 * T)
    tokens, mask = model.alignment_tokens(batch["frames"], batch["mask"], frames_2x, mask_2x)
    assert tokens.shape == (B, 3 * T, D)
    side = model.video_side(batch["frames"], batch["mask"], frames_2x, mask_2x)
    other = model.video_side(batch["frames"], batch["mask"], unit(B, 2 * T, D, seed=6), mask_2x)
    assert (side["video_aligned"] - other["video_aligned"]).abs().max() > 1e-4
    torch.testing.assert_close(side["video"], other["video"])  # global part ignores frames_2x


@pytest.mark.parametrize("name", TAB_NAMES)
def test_tab_ignores_the_start_of_text_token(name, batch):
    """Position 0 (the start token, the same for every caption in a causal tower) never reaches
    the aligned text embedding; any other word token does."""
    model = make(name)
    side = model.text_side(batch["text"], batch["tokens"], batch["token_mask"])["text_aligned"]
    for seed in (7, 8):
        tokens = batch["tokens"].clone()
        tokens[:, 0] = torch.randn(B + 1, D, generator=torch.Generator().manual_seed(seed)) * 10
        other = model.text_side(batch["text"], tokens, batch["token_mask"])["text_aligned"]
        assert torch.equal(side, other)
    tokens = batch["tokens"].clone()
    tokens[:, 1] += 1.0  # the first word
    moved = model.text_side(batch["text"], tokens, batch["token_mask"])["text_aligned"]
    assert (moved - side).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"tokens after the start token: rows \[0\]"):
        model.text_side(batch["text"][:1], batch["tokens"][:1], lengths_mask([1], L))
