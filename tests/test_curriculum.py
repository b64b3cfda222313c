"""Joint image + video training with a frame curriculum (vrlib.train.curriculum), on a micro model and
small made-up data so that every test runs in seconds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _frozen_micro import register_micro

from vrlib.models.frozen import FrozenConfig, build_frozen
from vrlib.train.clips import ClipSet, centred_offsets, clip_similarity, train_frames
from vrlib.train.curriculum import train_curriculum
from vrlib.train.schedule import CurriculumConfig, Stage, batch_kind, frames_at, stage_ends

WORDS = ["red", "blue", "green", "circle", "square", "star", "left", "right", "up", "down"]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    name = register_micro(tmp_path_factory.mktemp("cfg"))
    return build_frozen(FrozenConfig(clip_model=name, max_frames=8))


def _caption(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=4))


@pytest.fixture(scope="module")
def data():
    """8 videos (pools of 6 frames, 2 captions each) and 12 images, 16 x 16 pixels."""
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    pools = [torch.randn(6, 3, 16, 16, generator=gen).half() for _ in range(8)]
    captions = [_caption(rng) for _ in range(16)]
    videos = ClipSet(pools, captions, np.repeat(np.arange(8), 2))
    images = (torch.randn(12, 3, 16, 16, generator=gen).half(), [_caption(rng) for _ in range(12)])
    return videos, images


def _cfg(**kw) -> CurriculumConfig:
    base = dict(stages=[{"frames": 1, "steps": 2}, {"frames": 4, "steps": 2}], video_batch=4,
                image_batch=6, lr=1e-3)  # fmt: skip
    return CurriculumConfig.model_validate({**base, **kw})


def test_schedule_switches_frames_at_the_right_steps():
    stages = [Stage(frames=1, steps=3), Stage(frames=4, steps=2), Stage(frames=8, steps=1)]
    assert [frames_at(stages, s) for s in range(8)] == [1, 1, 1, 4, 4, 8, 8, 8]
    assert stage_ends(stages) == [3, 5, 6]


def test_joint_batches_alternate_and_single_sources_do_not():
    assert [batch_kind(_cfg(), s) for s in range(4)] == ["video", "image", "video", "image"]
    assert {batch_kind(_cfg(data="images"), s) for s in range(4)} == {"image"}
    assert {batch_kind(_cfg(data="videos"), s) for s in range(4)} == {"video"}


def test_a_run_expands_the_temporal_embedding_at_each_stage(micro, data):
    model = copy.deepcopy(micro[0])
    cfg = _cfg(data="videos", stages=[{"frames": 1, "steps": 2}, {"frames": 4, "steps": 2},
                                      {"frames": 8, "steps": 1}], expansion="nearest")  # fmt: skip
    seen = []
    original = model.expand_frames

    def spy(frames, method):
        seen.append((frames, method))
        original(frames, method)

    model.expand_frames = spy
    result = train_curriculum(model, micro[1].tokenizer, cfg, videos=data[0])
    assert [r["frames"] for r in result.steps] == [1, 1, 4, 4, 8]
    assert seen == [(4, "nearest"), (8, "nearest")]
    grown = [r["expanded"] for r in result.steps if "expanded" in r]
    assert [(g["from"], g["to"]) for g in grown] == [(1, 4), (4, 8)]
    assert all(g["table_rms"] >= 0 for g in grown)
    assert model.frames == 8
    assert set(result.flops_per_step) == {"video/1/4", "video/4/4", "video/8/4"}
    assert result.flops_per_step["video/1/4"] < result.flops_per_step["video/4/4"]
    assert result.total_flops == sum(r["flops"] for r in result.steps)


def test_a_stage_sets_its_own_batch_in_clips(micro, data):
    """Compute-matched stages (the paper's 96 / 24 / 16 clips): more clips when frames are few."""
    model = copy.deepcopy(micro[0])
    cfg = _cfg(data="videos", stages=[{"frames": 1, "steps": 2, "clips": 8},
                                      {"frames": 4, "steps": 2}])  # fmt: skip
    result = train_curriculum(model, micro[1].tokenizer, cfg, videos=data[0])
    assert set(result.flops_per_step) == {"video/1/8", "video/4/4"}  # video_batch is 4
    with pytest.raises(ValueError, match="clips"):
        Stage(frames=1, steps=2, clips=1)


def test_backwards_share_plays_clips_backwards_under_their_own_captions(micro, data):
    """The order-free-captions control: the same clips and captions, some played backwards;
    0 leaves every batch as it was, 1 reverses every clip, 1/2 some of them."""
    from vrlib.train.curriculum import CurriculumTrainer

    def batch(share: float) -> dict:
        cfg = _cfg(data="videos", stages=[{"frames": 4, "steps": 2}], backwards_share=share)
        return CurriculumTrainer(copy.deepcopy(micro[0]), micro[1].tokenizer, cfg, data[0],
                                 None).next_batch("video", 4)  # fmt: skip

    forward, backward, half = batch(0.0), batch(1.0), batch(0.5)
    assert forward["captions"] == backward["captions"] == half["captions"]
    assert torch.equal(backward["pixels"], forward["pixels"].flip(1))
    pairs = list(zip(half["pixels"], forward["pixels"], strict=True))
    flipped = [torch.equal(h, f.flip(0)) for h, f in pairs]
    kept = [torch.equal(h, f) for h, f in pairs]
    assert all(a != b for a, b in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)
    with pytest.raises(ValueError, match="backwards_share"):
        _cfg(backwards_share=1.5)


def test_training_frames_are_segment_random_and_new_each_pass():
    a = train_frames(40, 4, seed=0, epoch=0, video=3)
    assert np.array_equal(a, train_frames(40, 4, seed=0, epoch=0, video=3))
    assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(a))
    passes = {tuple(train_frames(40, 4, seed=0, epoch=e, video=3)) for e in range(6)}
    assert len(passes) > 1


def test_test_offsets_see_about_views_frames():
    assert centred_offsets(8, 8) == [0.5]
    assert centred_offsets(4, 8) == [0.25, 0.75]
    assert len(centred_offsets(1, 8)) == 8


def test_a_short_joint_run_lowers_the_loss(micro, data):
    model = copy.deepcopy(micro[0])
    cfg = _cfg(stages=[{"frames": 2, "steps": 48}], lr=2e-3)
    result = train_curriculum(model, micro[1].tokenizer, cfg, videos=data[0], images=data[1])
    losses = [r["loss"] for r in result.steps]
    assert {r["kind"] for r in result.steps} == {"video", "image"}
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])


def test_resume_across_a_stage_boundary_is_exact(micro, data, tmp_path):
    tok = micro[1].tokenizer
    straight = copy.deepcopy(micro[0])
    full = train_curriculum(straight, tok, _cfg(), videos=data[0], images=data[1], test=data[0])

    cfg = _cfg(checkpoint_dir=tmp_path)
    first = copy.deepcopy(micro[0])
    train_curriculum(first, tok, cfg, videos=data[0], images=data[1], until=2)  # stage 1 only
    assert first.frames == 1 and (tmp_path / "last.pt").is_file()
    resumed = copy.deepcopy(micro[0])  # a fresh process: the initial weights again
    again = train_curriculum(resumed, tok, cfg, videos=data[0], images=data[1], test=data[0])

    assert resumed.frames == 4
    expected = straight.state_dict()
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert [r["loss"] for r in again.steps] == [r["loss"] for r in full.steps]
    assert again.total_flops == full.total_flops
    assert torch.equal(again.final["sim"], full.final["sim"])


def test_resume_with_other_settings_fails(micro, data, tmp_path):
    tok = micro[1].tokenizer
    model = copy.deepcopy(micro[0])
    train_curriculum(model, tok, _cfg(checkpoint_dir=tmp_path), videos=data[0], images=data[1],
                     until=1)  # fmt: skip
    with pytest.raises(ValueError, match="lr"):
        train_curriculum(copy.deepcopy(micro[0]), tok, _cfg(checkpoint_dir=tmp_path, lr=1e-4),
                         videos=data[0], images=data[1])  # fmt: skip


def test_evaluation_leaves_the_model_alone_and_averages_offsets(micro, data):
    model = copy.deepcopy(micro[0])
    videos = data[0]
    sim = clip_similarity(model, micro[1].tokenizer, videos, frames=4, views=8, expansion="nearest")
    assert sim.shape == (16, 8) and model.frames == 1  # a copy was expanded, not the model
    single = clip_similarity(model, micro[1].tokenizer, videos, frames=4, views=4)
    assert not torch.allclose(sim, single)  # two offsets averaged differ from one
    # a subset of videos gives exactly those columns, in the order asked (the twin pass's saving)
    some = clip_similarity(model, micro[1].tokenizer, videos, frames=4, views=8,
                           expansion="nearest", videos=[5, 2, 7])  # fmt: skip
    assert some.shape == (16, 3)
    torch.testing.assert_close(some, sim[:, [5, 2, 7]], rtol=1e-5, atol=1e-6)


def test_bad_configurations_fail_before_training(micro, data):
    tok = micro[1].tokenizer
    with pytest.raises(ValueError, match="max_frames"):
        train_curriculum(micro[0], tok, _cfg(stages=[{"frames": 16, "steps": 1}]), videos=data[0],
                         images=data[1])  # fmt: skip
    with pytest.raises(ValueError, match="needs training images"):
        train_curriculum(micro[0], tok, _cfg(), videos=data[0])
    with pytest.raises(ValueError, match="only an image batch"):
        _cfg(
            stages=[{"frames": 1, "steps": 1}, {"frames": 4, "steps": 1}, {"frames": 8, "steps": 2}]
        )
    with pytest.raises(ValueError, match="unknown key"):
        CurriculumConfig.model_validate({"stages": [{"frames": 1, "steps": 1}], "epochs": 3})


def test_decoding_skips_broken_videos_with_their_captions(bikes_mp4, tmp_path):
    from vrlib.data.datasets import CaptionItem, RetrievalDataset, VideoItem
    from vrlib.data.video import VideoDecodeError
    from vrlib.train.clips import decode_clip_set

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    ds = RetrievalDataset(
        "t", "test", tmp_path, [VideoItem("bad", broken), VideoItem("bikes", bikes_mp4)],
        [CaptionItem("bad", "x"), CaptionItem("bikes", "bikes ride"), CaptionItem("bikes", "a road")],
    )  # fmt: skip

    def shrink(frames):  # (K, H, W, 3) uint8 -> (K, 3, 8, 8)
        x = torch.as_tensor(frames).permute(0, 3, 1, 2).float()
        return torch.nn.functional.interpolate(x, size=(8, 8))

    with pytest.raises(VideoDecodeError):
        decode_clip_set(ds, shrink, 4)
    clips, failed = decode_clip_set(ds, shrink, 4, on_error="skip")
    assert [f[0] for f in failed] == ["bad"] and clips.video_ids == ["bikes"]
    assert clips.captions == ["bikes ride", "a road"] and clips.caption_to_video.tolist() == [0, 0]
    assert clips.frames[0].shape == (4, 3, 8, 8) and clips.frames[0].dtype == torch.float16
