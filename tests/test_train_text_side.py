"""The engine with a trained text side, the papers' temperature, twin batches, per-epoch frame
sampling in the feature cache and the cached text inputs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vrlib.features.text_cache as text_cache_mod
import vrlib.train.engine as engine_mod
from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.encoders import load_clip, text_inputs
from vrlib.features import extract_frame_features, extract_text_inputs
from vrlib.models import build_model, build_text_side
from vrlib.train import CachedPairs, ContrastiveBatchSampler, TrainConfig, evaluate_model, fit

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star"]
FRAMES = 4


@pytest.fixture(scope="module")
def encoder():
    return load_clip("vrlib-tiny", device="cpu")


def _captions() -> list[str]:
    return [f"a {c} {s} moves" for c in COLOURS for s in SHAPES]  # 32 distinct captions


def _pairs(encoder, hidden_block: int | None = None, twin_of=None) -> CachedPairs:
    """One caption per video; a video's frames are noisy copies of a random unit vector, so the
    frozen text is at chance and only a learning text side can fit the pairing."""
    captions = _captions()
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(len(captions), encoder.embed_dim, generator=g), dim=-1)
    frames = z[:, None] + 0.1 * torch.randn(len(captions), FRAMES, encoder.embed_dim, generator=g)
    inputs = text_inputs(encoder, captions, hidden_block=hidden_block, trim=True)
    return CachedPairs(
        frames, inputs["text"], np.arange(len(captions)), text_inputs=inputs, twin_of=twin_of
    )


def _side(name: str, encoder, **kw):
    torch.manual_seed(0)
    opts = {"init_scale": 0.02} if name == "adapter" else {}
    return build_text_side(name, encoder=encoder, dim=encoder.embed_dim, **opts, **kw)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=6, batch_size=16, lr=3e-3, warmup=0, weight_decay=0.0, progress=False)
    return TrainConfig(**{**base, **kw})


def _head(encoder):
    return build_model("meanP", dim=encoder.embed_dim, num_frames=FRAMES)


@pytest.mark.parametrize("name", ["adapter", "last_blocks"])
def test_a_learning_text_side_lowers_the_loss_alone(encoder, name):
    """meanP trains nothing and the temperature is fixed: all learning is the text side's."""
    side = _side(name, encoder)
    data = _pairs(encoder, hidden_block=side.hidden_block)
    frozen_before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    result = fit(
        _head(encoder), data, data, _cfg(learn_temperature=False, temperature=0.05), text_side=side
    )
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.final_state["loss"]["logit_scale"] == pytest.approx(math.log(20))
    assert set(result.final_state["text_side"]) == set(side.state_dict())
    assert result.best_state is not None and "text_side" in result.best_state
    # the encoder the side was copied from never changes
    for k, v in encoder.model.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
    # evaluation runs the trained side: better than the frozen text on the training pairs
    frozen = evaluate_model(_head(encoder), data)["t2v"]["R@1"]
    assert evaluate_model(_head(encoder), data, text_side=side)["t2v"]["R@1"] > frozen


def test_the_frozen_side_evaluates_exactly_as_the_cached_text(encoder):
    data = _pairs(encoder)
    frozen = build_text_side("frozen", dim=encoder.embed_dim)
    plain = evaluate_model(_head(encoder), data, chunk_size=5)
    assert evaluate_model(_head(encoder), data, chunk_size=5, text_side=frozen) == plain


def _crash_after_first_checkpoint(monkeypatch):
    original = engine_mod._save_checkpoint

    def save_then_crash(path, ckpt):
        original(path, ckpt)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(engine_mod, "_save_checkpoint", save_then_crash)


@pytest.mark.parametrize("name", ["adapter", "last_blocks"])
def test_resume_with_a_text_side_reproduces_the_uninterrupted_run(
    encoder, name, tmp_path: Path, monkeypatch
):
    data = _pairs(encoder, hidden_block=_side(name, encoder).hidden_block)
    cfg = dict(epochs=2, text_lr=1e-3)
    straight = fit(
        _head(encoder), data, data, _cfg(**cfg, checkpoint_dir=tmp_path / "a"),
        text_side=_side(name, encoder),
    )  # fmt: skip
    with monkeypatch.context() as m:
        _crash_after_first_checkpoint(m)
        with pytest.raises(KeyboardInterrupt):
            fit(
                _head(encoder), data, data, _cfg(**cfg, checkpoint_dir=tmp_path / "b"),
                text_side=_side(name, encoder),
            )  # fmt: skip
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and "text_side" in saved
    fresh_side = _side(name, encoder)
    with torch.no_grad():  # a different start is overwritten by the checkpoint
        for p in fresh_side.parameters():
            p.add_(0.5)
    resumed = fit(
        _head(encoder), data, data, _cfg(**cfg, checkpoint_dir=tmp_path / "b"),
        text_side=fresh_side,
    )  # fmt: skip
    for key, value in straight.final_state["text_side"].items():
        assert torch.equal(value, resumed.final_state["text_side"][key]), key
    assert [s["loss"] for s in straight.steps] == [s["loss"] for s in resumed.steps]
    best = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert set(best) == {"model", "loss", "text_side"}


def test_text_side_lr_group_and_bad_combinations(encoder):
    side = _side("adapter", encoder)
    data = _pairs(encoder)
    trainer = engine_mod.Trainer(_head(encoder), data, _cfg(text_lr=1e-4), text_side=side)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["text_side/decay"]["lr"] == groups["text_side/no_decay"]["lr"] == 1e-4
    assert groups["text_side/no_decay"]["weight_decay"] == 0.0
    no_decay = {id(p) for p in groups["text_side/no_decay"]["params"]}
    assert all(id(p) in no_decay for n, p in side.named_parameters() if n.endswith("bias"))
    # a last_blocks side needs the cached hidden states
    with pytest.raises(ValueError, match=r"missing \['hidden'\]"):
        fit(_head(encoder), data, None, _cfg(), text_side=_side("last_blocks", encoder))
    no_inputs = CachedPairs(data.frames, data.text, data.caption_to_video)
    with pytest.raises(ValueError, match="text_inputs"):
        fit(_head(encoder), no_inputs, None, _cfg(), text_side=side)
    with pytest.raises(ValueError, match="end_to_end"):
        engine_mod._check_mode(_cfg(mode="end_to_end"), object(), encoder, "x", side)
    with pytest.raises(ValueError, match=r"expected 32 rows"):
        CachedPairs(
            data.frames, data.text, data.caption_to_video, text_inputs={"text": data.text[:3]}
        )


# ----------------------------------------------------------------------------- temperature


def test_temperature_of_the_papers_is_accepted_and_stays_fixed(encoder):
    data = _pairs(encoder)
    result = fit(
        _head(encoder), data, None, _cfg(epochs=1, temperature=0.01, learn_temperature=False),
        text_side=_side("adapter", encoder),
    )  # fmt: skip
    assert result.final_state["loss"]["logit_scale"].item() == pytest.approx(math.log(100))
    with pytest.raises(ValueError, match="greater than or equal to 0.01"):
        TrainConfig(temperature=0.005)
    with pytest.raises(ValueError, match="only mode='end_to_end'"):
        TrainConfig(temperature=None)
    assert TrainConfig(temperature=None, mode="end_to_end").temperature is None


def test_the_logit_scale_is_clamped_at_100_after_each_step(encoder):
    data = _pairs(encoder)
    trainer = engine_mod.Trainer(
        _head(encoder), data, _cfg(temperature=0.01, lr=1.0), text_side=_side("adapter", encoder)
    )
    trainer.train_step(next(iter(trainer.loader(0))))
    assert trainer.loss.logit_scale.item() <= math.log(100) + 1e-6


def test_end_to_end_temperature_none_starts_from_the_encoder_scale():
    enc = load_clip("vrlib-tiny", device="cpu", precision="fp32")
    with torch.no_grad():
        enc.model.logit_scale.fill_(math.log(30.0))
    from vrlib.train import EndToEndPairs

    videos = [np.zeros((2, 16, 16, 3), np.uint8) for _ in range(4)]
    data = EndToEndPairs(videos, [f"clip {i}" for i in range(4)], np.arange(4))
    trainer = engine_mod.Trainer(
        _head(enc), data, _cfg(mode="end_to_end", temperature=None, batch_size=4), encoder=enc
    )
    assert trainer.loss.logit_scale.item() == pytest.approx(math.log(30.0), rel=1e-6)


# ----------------------------------------------------------------------------- twin batches


def _twin_sampler(twins: bool, batch_size: int = 8, seed: int = 0):
    n_videos = 40
    twin_of = np.full(n_videos, -1)
    twin_of[0:24:2], twin_of[1:24:2] = np.arange(1, 24, 2), np.arange(0, 24, 2)  # 12 pairs
    c2v = np.repeat(np.arange(n_videos), 3)  # 3 captions each
    sampler = ContrastiveBatchSampler(
        c2v, batch_size, seed=seed, twin_of=twin_of if twins else None
    )
    return sampler, c2v, twin_of


def _together(batches, c2v, twin_of) -> float:
    """Fraction of (batch, twinned video) where the twin is in the same batch."""
    hits = total = 0
    for batch in batches:
        vids = set(c2v[batch].tolist())
        for v in vids:
            if twin_of[v] >= 0:
                total += 1
                hits += twin_of[v] in vids
    return hits / total


@pytest.mark.parametrize("seed", [0, 1])
def test_twin_batches_pack_twins_together_without_repeats(seed):
    sampler, c2v, twin_of = _twin_sampler(True, seed=seed)
    batches = sampler.global_batches(0)
    assert len(batches) == len(sampler) == len(c2v) // 8
    assert all(len(b) == 8 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat)  # every caption at most once per epoch
    assert all(len(set(c2v[b].tolist())) == len(b) for b in batches)  # no video twice
    plain, _, _ = _twin_sampler(False, seed=seed)
    together, baseline = (
        _together(batches, c2v, twin_of),
        _together(plain.global_batches(0), c2v, twin_of),
    )
    assert together >= 0.9 and baseline < 0.5, (together, baseline)
    assert batches == sampler.global_batches(0) and batches != sampler.global_batches(1)


def test_twin_batches_need_twins_and_twin_of_is_checked(encoder):
    data = _pairs(encoder)
    with pytest.raises(ValueError, match="no twin_of"):
        fit(
            _head(encoder), data, None, _cfg(twin_batches=True), text_side=_side("adapter", encoder)
        )
    with pytest.raises(ValueError, match="symmetric"):
        CachedPairs(data.frames, data.text, data.caption_to_video, twin_of=[1, 2] + [-1] * 30)
    with pytest.raises(ValueError, match="expected"):
        CachedPairs(data.frames, data.text, data.caption_to_video, twin_of=[-1] * 3)
    twins = np.full(32, -1)
    twins[:2] = [1, 0]
    paired = _pairs(encoder, twin_of=twins)
    result = fit(_head(encoder), paired, None, _cfg(epochs=1, twin_batches=True),
                 text_side=_side("adapter", encoder))  # fmt: skip
    assert len(result.history) == 1


# ----------------------------------------------------------------------------- feature caches


def test_segment_random_features_change_with_the_epoch_and_are_cached_per_epoch(
    encoder, bikes_mp4: Path, tmp_path: Path
):
    ds = RetrievalDataset("t", "all", bikes_mp4.parent, [VideoItem("bikes", bikes_mp4)], [])
    sampling = SamplingConfig(strategy="segment_random", n=4, size=32)

    def run(epoch: int):
        return extract_frame_features(ds, encoder, sampling, tmp_path, epoch=epoch, progress=False)

    first, again, second = run(0), run(0), run(1)
    assert again.stats["cached"] == 1 and np.array_equal(first.indices[0], again.indices[0])
    assert second.stats["encoded"] == 1 and first.key != second.key
    assert not np.array_equal(first.indices[0], second.indices[0])
    uniform = SamplingConfig(strategy="uniform", n=4, size=32)
    a = extract_frame_features(ds, encoder, uniform, tmp_path, epoch=0, progress=False)
    b = extract_frame_features(ds, encoder, uniform, tmp_path, epoch=3, progress=False)
    assert a.key == b.key and b.stats["cached"] == 1  # the epoch is no key of fixed strategies


def test_text_inputs_cache_round_trip(encoder, tmp_path: Path, monkeypatch):
    captions = _captions()[:5]
    first = extract_text_inputs(captions, encoder, hidden_block=1, cache_dir=tmp_path, trim=True)
    assert set(first) == {"text", "tokens", "token_mask", "hidden"}
    direct = text_inputs(encoder, captions, hidden_block=1, trim=True)
    assert all(torch.equal(first[k], direct[k]) for k in direct)
    (path,) = (tmp_path / "text_inputs").glob("*.pt")

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as m:
        m.setattr(text_cache_mod, "text_inputs", refuse)
        again = extract_text_inputs(
            captions, encoder, hidden_block=1, cache_dir=tmp_path, trim=True
        )
    assert all(torch.equal(first[k], again[k]) for k in first)
    # other keys are other files
    plain = extract_text_inputs(captions, encoder, cache_dir=tmp_path)
    assert "hidden" not in plain and plain["tokens"].shape[1] > first["tokens"].shape[1]
    assert len(list((tmp_path / "text_inputs").glob("*.pt"))) == 2
    # a damaged file is recomputed with a warning
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged"):
        fixed = extract_text_inputs(
            captions, encoder, hidden_block=1, cache_dir=tmp_path, trim=True
        )
    assert torch.equal(fixed["hidden"], first["hidden"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract_text_inputs(captions, encoder, hidden_block=1, cache_dir=tmp_path, trim=True)
    with pytest.raises(TypeError, match="sequence of str"):
        extract_text_inputs("one caption", encoder, cache_dir=None)
