"""The training engine: learning, exact resume, schedule, config, clipping, sampling, evaluation,
end-to-end mode with a tiny open_clip model, and DDP (two gloo processes) == one process."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

import vrlib.train as train_mod
import vrlib.train.engine as engine_mod
from vrlib.train import (
    CachedPairs,
    ContrastiveBatchSampler,
    EndToEndPairs,
    TrainConfig,
    Trainer,
    evaluate_model,
    fit,
    lr_factor,
    similarity_matrix,
)
from vrlib.train.objective import _to_device

DIM, FRAMES = 16, 6


# ----------------------------------------------------------------------------- local heads
# Small heads with the vrlib.models interface, so the engine is tested without depending on them.


class TinyHead(nn.Module):
    """Projected frames + position embedding, masked mean; projected text. Optional dropout."""

    needs_tokens = False
    needs_double_rate = False

    def __init__(self, dim: int = DIM, num_frames: int = FRAMES, dropout: float = 0.0) -> None:
        super().__init__()
        self.frame_proj = nn.Linear(dim, dim)
        self.text_proj = nn.Linear(dim, dim)
        self.pos_embedding = nn.Parameter(torch.zeros(num_frames, dim))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def video_side(self, frames, mask, frames_2x=None, mask_2x=None):
        x = self.drop(self.frame_proj(self.norm(frames + self.pos_embedding[: frames.shape[1]])))
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return {"video": F.normalize((x * m).sum(1) / m.sum(1), dim=-1)}

    def text_side(self, text, tokens=None, token_mask=None):
        return {"text": F.normalize(self.text_proj(text), dim=-1)}

    def similarity(self, text_side, video_side):
        return text_side["text"] @ video_side["video"].T


class TinyPartsHead(TinyHead):
    """A TAB-like head: a global term plus an aligned term over caption tokens, weighted by w."""

    needs_tokens = True

    def __init__(self, w: float = 0.7, **kw) -> None:
        super().__init__(**kw)
        self.w = w
        self.token_proj = nn.Linear(DIM, DIM)

    def video_side(self, frames, mask, frames_2x=None, mask_2x=None):
        side = super().video_side(frames, mask)
        side["video_aligned"] = F.normalize(frames[:, 0], dim=-1)
        return side

    def text_side(self, text, tokens=None, token_mask=None):
        if tokens is None:
            raise ValueError("tokens needed")
        m = token_mask.unsqueeze(-1).float()
        aligned = F.normalize(self.token_proj((tokens * m).sum(1) / m.sum(1)), dim=-1)
        return {**super().text_side(text), "text_aligned": aligned}

    def similarity_parts(self, ts, vs):
        return {
            "global": ts["text"] @ vs["video"].T,
            "aligned": ts["text_aligned"] @ vs["video_aligned"].T,
        }

    def part_weights(self):
        return {"global": self.w, "aligned": 1 - self.w}

    def similarity(self, ts, vs):
        parts = self.similarity_parts(ts, vs)
        return sum(w * parts[k] for k, w in self.part_weights().items())


class ParameterFree(nn.Module):
    """Mean pooling, like meanP: only the temperature can train."""

    needs_tokens = False
    needs_double_rate = False

    def video_side(self, frames, mask, frames_2x=None, mask_2x=None):
        m = mask.unsqueeze(-1).to(frames.dtype)
        return {"video": F.normalize((frames * m).sum(1) / m.sum(1), dim=-1)}

    def text_side(self, text, tokens=None, token_mask=None):
        return {"text": F.normalize(text, dim=-1)}

    def similarity(self, ts, vs):
        return ts["text"] @ vs["video"].T


# ----------------------------------------------------------------------------- data


def _rotation(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(DIM, DIM, generator=g))[0]


def make_pairs(
    n_videos: int, captions_per_video: int, seed: int, *, tokens: bool = False, double: bool = False
) -> CachedPairs:
    """Videos are noisy copies of a latent z over a variable number of frames; captions are a
    fixed rotation of z plus noise. Zero-shot cosine is at chance; a head can learn the map."""
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n_videos, DIM, generator=g), dim=-1)
    frames = z[:, None] + 0.3 * torch.randn(n_videos, FRAMES, DIM, generator=g)  # (N, T, D)
    lengths = torch.randint(3, FRAMES + 1, (n_videos,), generator=g)
    mask = torch.arange(FRAMES)[None] < lengths[:, None]  # (N, T)
    c2v = torch.arange(n_videos).repeat_interleave(captions_per_video)
    text = z[c2v] @ _rotation() + 0.3 * torch.randn(len(c2v), DIM, generator=g)
    kw = {}
    if tokens:
        kw["tokens"] = text[:, None] + 0.1 * torch.randn(len(c2v), 4, DIM, generator=g)
        kw["token_mask"] = (  # >= 2 valid: a tokenised caption has a start and an end token
            torch.arange(4)[None] < torch.randint(2, 5, (len(c2v),), generator=g)[:, None]
        )
    if double:
        kw["frames_2x"] = frames.repeat_interleave(2, dim=1)
        kw["mask_2x"] = mask.repeat_interleave(2, dim=1)
    return CachedPairs(frames, text, c2v, mask=mask, **kw)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, lr=1e-2, weight_decay=0.01, warmup=2, progress=False)
    return TrainConfig(**{**base, **kw})


def _head(seed: int = 0, cls=TinyHead, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return cls(**kw)


# ----------------------------------------------------------------------------- learning


def test_training_lowers_the_loss_and_beats_chance_on_validation(tmp_path: Path):
    train, val = make_pairs(96, 2, seed=1), make_pairs(20, 2, seed=2)
    head = _head()
    before = evaluate_model(head, val)["t2v"]["R@1"]
    result = fit(head, train, val, _cfg(epochs=10, batch_size=32, checkpoint_dir=tmp_path))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    chance = 100 / 20
    final = result.history[-1]
    assert final["val_t2v_R@1"] >= 4 * chance and final["val_t2v_R@1"] > before
    assert final["val_v2t_R@1"] >= 4 * chance
    assert (
        result.best_epoch is not None and result.best_metrics["val_t2v_R@1"] >= final["val_t2v_R@1"]
    )
    # logs: JSON and CSV with one row per epoch, config saved next to them
    log = json.loads(result.log_path.read_text())
    assert [r["epoch"] for r in log["history"]] == list(range(1, 11))
    assert log["config"]["batch_size"] == 32
    assert result.csv_path.read_text().splitlines()[0].startswith("epoch,step,train_loss")
    assert len(result.csv_path.read_text().splitlines()) == 11
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "config.json").is_file()


def test_parameter_free_head_trains_only_the_temperature():
    train = make_pairs(24, 2, seed=3)
    result = fit(ParameterFree(), train, None, _cfg(epochs=1, batch_size=8))
    assert result.final_state["model"] == {}
    assert result.final_state["loss"]["logit_scale"] != pytest.approx(math.log(1 / 0.07))
    assert "val_t2v_R@1" not in result.history[0]  # no validation data, no metrics
    with pytest.raises(ValueError, match="nothing to train"):
        fit(ParameterFree(), train, None, _cfg(epochs=1, batch_size=8, learn_temperature=False))


def test_multi_part_heads_are_trained_with_their_weighted_parts(monkeypatch):
    """TAB-style heads: loss = w * InfoNCE(global) + (1 - w) * InfoNCE(aligned)."""
    data = make_pairs(8, 1, seed=4, tokens=True)
    head = _head(cls=TinyPartsHead, w=0.7)
    trainer = Trainer(head, data, _cfg(batch_size=8, grad_clip=None))
    batch = next(iter(trainer.loader(0)))
    with torch.no_grad():
        b = _to_device(batch, trainer.device)
        head.train()
        ts, vs = (
            head.text_side(b["text"], b["tokens"], b["token_mask"]),
            head.video_side(b["frames"], b["mask"]),
        )
        parts = head.similarity_parts(ts, vs)
        expected = 0.7 * trainer.loss(parts["global"]) + 0.3 * trainer.loss(parts["aligned"])
    assert trainer.train_step(batch)["loss"] == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs_tokens"):
        fit(_head(cls=TinyPartsHead), make_pairs(8, 1, seed=4), None, _cfg(batch_size=8))


# ----------------------------------------------------------------------------- resume


def _crash_after_first_checkpoint(monkeypatch):
    original = engine_mod._save_checkpoint

    def save_then_crash(path, ckpt):
        original(path, ckpt)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(engine_mod, "_save_checkpoint", save_then_crash)


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path: Path, monkeypatch):
    train, val = make_pairs(40, 2, seed=5), make_pairs(10, 2, seed=6)
    cfg = dict(epochs=2, batch_size=16, lr=5e-3)  # dropout makes the RNG state matter
    straight = fit(_head(dropout=0.2), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "a"))

    with monkeypatch.context() as m:
        _crash_after_first_checkpoint(m)
        with pytest.raises(KeyboardInterrupt):
            fit(_head(dropout=0.2), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b"))
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["step"] == straight.history[0]["step"]

    # a different initialisation is overwritten by the checkpoint
    resumed = fit(
        _head(seed=123, dropout=0.2), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b")
    )
    for key, value in straight.final_state["model"].items():
        assert torch.equal(value, resumed.final_state["model"][key]), key
    assert torch.equal(
        straight.final_state["loss"]["logit_scale"], resumed.final_state["loss"]["logit_scale"]
    )
    strip = [
        {k: v for k, v in r.items() if k not in ("time_s", "data_s")} for r in straight.history
    ]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("time_s", "data_s")} for r in resumed.history
    ]
    assert [s["loss"] for s in straight.steps] == [s["loss"] for s in resumed.steps]

    # calling again on a finished run trains nothing and returns the same result
    again = fit(_head(seed=7, dropout=0.2), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b"))
    assert len(again.history) == 2 and torch.equal(
        again.final_state["model"]["frame_proj.weight"],
        straight.final_state["model"]["frame_proj.weight"],
    )
    # resuming with settings that change training is refused, naming them
    with pytest.raises(ValueError, match=r"lr: 0\.005 -> 0\.001"):
        fit(_head(), train, val, _cfg(**{**cfg, "lr": 1e-3}, checkpoint_dir=tmp_path / "b"))
    # ... unless asked to start over
    fresh = fit(
        _head(),
        train,
        None,
        _cfg(**{**cfg, "epochs": 1}, resume=False, checkpoint_dir=tmp_path / "b"),
    )
    assert len(fresh.history) == 1


def test_resumed_or_recalled_fit_restores_the_best_epoch_and_its_weights(tmp_path, monkeypatch):
    """Validation scores 10, 50, 20: the best epoch is 2, not the last. A run resumed after
    epoch 2, and a finished run called again, must return epoch 2 and its weights (a study
    evaluates ``best_state``), never the final ones."""
    scores = {0: 10.0, 1: 50.0, 2: 20.0}  # by 0-based epoch
    monkeypatch.setattr(
        engine_mod._Run, "validate", lambda run: {"val_t2v_R@1": scores[run.t.epoch]}
    )
    train, val = make_pairs(40, 2, seed=5), make_pairs(10, 2, seed=6)
    cfg = dict(epochs=3, batch_size=16, lr=5e-3)
    straight = fit(_head(), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "a"))
    assert straight.best_epoch == 2 and straight.best_metrics["val_t2v_R@1"] == 50.0
    weight = "frame_proj.weight"
    assert not torch.equal(
        straight.best_state["model"][weight], straight.final_state["model"][weight]
    )

    saves = {"n": 0}
    original = engine_mod._save_checkpoint

    def crash_after_epoch_2(path, ckpt):
        original(path, ckpt)
        saves["n"] += 1
        if saves["n"] == 2:
            raise KeyboardInterrupt("simulated crash")

    with monkeypatch.context() as m:
        m.setattr(engine_mod, "_save_checkpoint", crash_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            fit(_head(), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b"))
    resumed = fit(_head(seed=9), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b"))
    again = fit(_head(seed=8), train, val, _cfg(**cfg, checkpoint_dir=tmp_path / "b"))
    for result in (resumed, again):
        assert result.best_epoch == 2 and result.best_metrics["val_t2v_R@1"] == 50.0
        assert [r["epoch"] for r in result.history] == [1, 2, 3]
        for part in ("model", "loss"):
            for key, value in straight.best_state[part].items():
                assert torch.equal(value, result.best_state[part][key]), (part, key)
        assert torch.equal(
            result.final_state["model"][weight], straight.final_state["model"][weight]
        )


# ----------------------------------------------------------------------------- schedule, config, clipping


def test_lr_factor_warms_up_linearly_then_follows_a_cosine():
    assert [lr_factor(s, 4, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 12) == 1.0
    assert lr_factor(8, 4, 12) == pytest.approx(0.5)
    assert lr_factor(12, 4, 12) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(8, 4, 12, min_ratio=0.2) == pytest.approx(0.6)
    assert lr_factor(0, 0, 10) == 1.0
    decay = [lr_factor(s, 4, 12) for s in range(4, 13)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))


def test_the_trainer_follows_the_schedule_step_by_step():
    data = make_pairs(32, 1, seed=8)
    result = fit(
        _head(), data, None, _cfg(epochs=3, batch_size=8, lr=1e-3, warmup=0.25, log_every=1)
    )
    total = 3 * 4
    assert [s["step"] for s in result.steps] == list(range(1, total + 1))
    expected = [1e-3 * lr_factor(s, 3, total) for s in range(total)]
    assert [s["lr"] for s in result.steps] == pytest.approx(expected)


def test_train_config_rejects_unknown_keys_and_bad_values_by_name():
    with pytest.raises(ValidationError, match="epochz"):
        TrainConfig(epochz=3)
    with pytest.raises(ValidationError, match="valid keys"):
        TrainConfig.model_validate({"batch_size": 8, "lr_head": 1e-3})
    with pytest.raises(ValidationError, match="warmup"):
        TrainConfig(warmup=1.5)
    with pytest.raises(ValidationError, match="select_metric"):
        TrainConfig(select_metric="R@1")
    with pytest.raises(ValidationError, match="mode"):
        TrainConfig(mode="frozen")
    assert (
        TrainConfig(warmup=0.1).warmup_steps(50) == 5
        and TrainConfig(warmup=7).warmup_steps(50) == 7
    )


def test_amp_settings_resolve_per_device():
    data = make_pairs(16, 1, seed=9)
    assert Trainer(_head(), data, _cfg(batch_size=8)).amp_dtype is None  # auto: off on CPU
    bf16 = Trainer(_head(), data, _cfg(batch_size=8, amp="bf16"))
    assert bf16.amp_dtype == torch.bfloat16 and not bf16.scaler.is_enabled()
    assert math.isfinite(bf16.train_step(next(iter(bf16.loader(0))))["loss"])
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(_head(), data, _cfg(batch_size=8, amp="fp16"))


def _total_grad_norm(params) -> float:
    return float(
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
    )


def test_gradients_are_clipped_to_the_configured_norm():
    data = make_pairs(16, 1, seed=9)
    clipped = Trainer(_head(), data, _cfg(batch_size=16, grad_clip=1e-3))
    out = clipped.train_step(next(iter(clipped.loader(0))))
    assert out["grad_norm"] > 1e-2  # the raw norm was well above the limit ...
    assert _total_grad_norm(clipped.trainable) == pytest.approx(1e-3, rel=1e-4)  # ... and was cut
    free = Trainer(_head(), data, _cfg(batch_size=16, grad_clip=None))
    out = free.train_step(next(iter(free.loader(0))))
    assert _total_grad_norm(free.trainable) == pytest.approx(out["grad_norm"], rel=1e-5)


def test_no_weight_decay_on_biases_norms_embeddings_and_temperature():
    trainer = Trainer(_head(), make_pairs(16, 1, seed=9), _cfg(batch_size=8, weight_decay=0.3))
    names = {id(p): n for n, p in trainer.objective.named_parameters()}
    decay = {
        names[id(p)]
        for g in trainer.optimizer.param_groups
        if g["weight_decay"] > 0
        for p in g["params"]
    }
    no_decay = {
        names[id(p)]
        for g in trainer.optimizer.param_groups
        if g["weight_decay"] == 0
        for p in g["params"]
    }
    assert decay == {"head.frame_proj.weight", "head.text_proj.weight"}
    assert {
        "head.frame_proj.bias",
        "head.norm.weight",
        "head.pos_embedding",
        "loss.logit_scale",
    } <= no_decay


# ----------------------------------------------------------------------------- sampling


def test_batches_hold_each_video_once_when_possible_and_are_deterministic():
    c2v = torch.arange(30).repeat_interleave(4)  # 120 captions, 30 videos
    sampler = ContrastiveBatchSampler(c2v, 12, seed=3)
    batches = sampler.global_batches(0)
    assert len(batches) == len(sampler) == 10
    assert all(len(set(c2v[b].tolist())) == 12 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 120
    assert batches == ContrastiveBatchSampler(c2v, 12, seed=3).global_batches(0)
    assert batches != sampler.global_batches(1)
    # two ranks split every global batch in rank order
    ranks = [ContrastiveBatchSampler(c2v, 12, seed=3, rank=r, world_size=2) for r in range(2)]
    for global_batch, a, b in zip(batches, *ranks, strict=True):
        assert a + b == global_batch
    with pytest.raises(ValueError, match="divisible"):
        ContrastiveBatchSampler(c2v, 12, world_size=5)


def test_one_caption_per_video_sampling_and_unavoidable_repeats():
    c2v = torch.arange(10).repeat_interleave(3)
    sampler = ContrastiveBatchSampler(c2v, 5, sampling="one_caption_per_video", seed=0)
    batches = sampler.global_batches(0)
    assert len(batches) == 2 and sorted(c2v[[i for b in batches for i in b]].tolist()) == list(
        range(10)
    )
    # two videos, batch of four: repeats cannot be avoided, the batch is still produced
    tight = ContrastiveBatchSampler(torch.tensor([0, 0, 1, 1, 0, 1]), 4, seed=0).global_batches(0)
    assert len(tight) == 1 and len(tight[0]) == 4


# ----------------------------------------------------------------------------- evaluation


def test_chunked_similarity_equals_the_full_matrix_and_raw_tensor_form_agrees():
    data = make_pairs(11, 2, seed=10, tokens=True)
    head = _head(cls=TinyPartsHead).eval()
    chunked = similarity_matrix(head, data, chunk_size=3)  # uneven last chunk
    with torch.no_grad():
        ts = head.text_side(data.text, data.tokens, data.token_mask)
        vs = head.video_side(data.frames, data.mask)
        full = head.similarity(ts, vs)
    assert chunked.shape == (22, 11) and torch.allclose(chunked, full, atol=1e-6)
    a = evaluate_model(head, data, chunk_size=4)
    b = evaluate_model(
        head, data.frames, data.mask, data.text, data.tokens, data.token_mask, data.caption_to_video
    )
    assert a["t2v"] == b["t2v"] and a["v2t"] == b["v2t"]


def test_cached_pairs_validate_their_inputs():
    frames = [torch.randn(3, 8), torch.randn(5, 8)]
    pairs = CachedPairs(frames, torch.randn(3, 8), [0, 1, 1])
    assert pairs.frames.shape == (2, 5, 8) and pairs.mask.sum(1).tolist() == [3, 5]
    item = pairs[2]
    assert item["video_index"] == 1 and item["frames"].shape == (5, 8)
    with pytest.raises(ValueError, match="text"):
        CachedPairs(frames, torch.randn(3, 7), [0, 1, 1])
    with pytest.raises(ValueError, match="caption_to_video"):
        CachedPairs(frames, torch.randn(3, 8), [0, 1, 2])
    with pytest.raises(ValueError, match="tokens"):
        CachedPairs(frames, torch.randn(3, 8), [0, 1, 1], tokens=torch.randn(2, 4, 8))
    with pytest.raises(TypeError, match="EndToEndPairs"):
        fit(_head(), pairs, None, _cfg(mode="end_to_end"))


# ----------------------------------------------------------------------------- registered heads

try:  # the heads are written in parallel with this engine
    from vrlib.models import build_model
except ImportError:  # pragma: no cover - until vrlib.models lands
    build_model = None


@pytest.mark.skipif(build_model is None, reason="vrlib.models.build_model not available")
@pytest.mark.parametrize("name", ["meanP", "seqTransf", "tdb+tab-base", "tdb+tab-tdb"])
def test_registered_heads_train_and_evaluate(name: str):
    kw = {"extra_frames": "double_rate"} if name == "tdb+tab-tdb" else {}
    torch.manual_seed(0)
    head = build_model(name, dim=DIM, num_frames=FRAMES, **kw)
    data = make_pairs(16, 2, seed=11, tokens=head.needs_tokens, double=head.needs_double_rate)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    result = fit(head, data, data, _cfg(epochs=1, batch_size=8))
    assert math.isfinite(result.history[0]["train_loss"]) and "val_t2v_R@1" in result.history[0]
    changed = [k for k, v in head.state_dict().items() if not torch.equal(v, before[k])]
    assert bool(changed) == bool(before)  # every head with parameters moved; meanP has none


# ----------------------------------------------------------------------------- end to end


def _clips(n: int, seed: int) -> tuple[list[np.ndarray], list[str], list[int]]:
    """n short clips (2-3 frames of 40x48) whose colour the captions name."""
    rng = np.random.default_rng(seed)
    colours = {
        "red": (220, 30, 30),
        "green": (30, 200, 40),
        "blue": (30, 40, 220),
        "white": (240, 240, 240),
    }
    names = list(colours)
    videos, captions, c2v = [], [], []
    for v in range(n):
        name = names[v % len(names)]
        clip = rng.integers(0, 40, size=(int(rng.integers(2, 4)), 40, 48, 3)).astype(np.uint8)
        clip[:, 10:30, 12:36] = colours[name]
        videos.append(clip)
        for text in (f"a {name} square", f"{name} box in the middle"):
            captions.append(text)
            c2v.append(v)
    return videos, captions, c2v


def test_end_to_end_mode_trains_encoder_and_head_on_pixels():
    from vrlib.encoders import load_clip

    encoder = load_clip("vrlib-tiny", device="cpu", precision="fp32")
    dim = encoder.embed_dim
    train = EndToEndPairs(*_clips(8, seed=0))
    val = EndToEndPairs(*_clips(4, seed=1))
    head = _head(dim=dim, num_frames=3)
    fingerprint = encoder.fingerprint
    enc_before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    head_before = {k: v.clone() for k, v in head.state_dict().items()}
    cfg = _cfg(epochs=1, batch_size=8, mode="end_to_end", encoder_lr=1e-4)
    result = fit(head, train, val, cfg, encoder=encoder)
    assert math.isfinite(result.history[0]["train_loss"]) and "val_t2v_R@1" in result.history[0]
    assert not torch.equal(
        encoder.model.state_dict()["visual.conv1.weight"], enc_before["visual.conv1.weight"]
    )
    assert not torch.equal(
        encoder.model.state_dict()["token_embedding.weight"], enc_before["token_embedding.weight"]
    )
    assert not torch.equal(head.state_dict()["frame_proj.weight"], head_before["frame_proj.weight"])
    assert "encoder" in result.final_state
    assert not encoder.model.training  # handed back in eval mode ...
    assert encoder.fingerprint != fingerprint  # ... and feature caches see the new weights
    lrs = {g["name"]: g["lr"] for g in Trainer(head, train, cfg, encoder).optimizer.param_groups}
    assert lrs["encoder/decay"] / lrs["head/decay"] == pytest.approx(1e-4 / 1e-2)
    with pytest.raises(ValueError, match="encoder"):
        fit(head, train, val, cfg)


def test_end_to_end_batches_carry_token_features_with_gradients():
    from vrlib.encoders import load_clip

    encoder = load_clip("vrlib-tiny", device="cpu", precision="fp32")
    encoder.model.requires_grad_(True)
    data = EndToEndPairs(*_clips(3, seed=2))
    batch = train_mod.encode_batch_end_to_end(encoder, data.__getitems__([0, 2, 5]), tokens=True)
    n_frames = data.num_frames
    assert batch["frames"].shape == (3, n_frames, encoder.embed_dim)
    assert torch.allclose(
        batch["frames"][batch["mask"]].norm(dim=-1), torch.ones(int(batch["mask"].sum()))
    )
    assert (batch["frames"][~batch["mask"]] == 0).all()  # padded frames are never encoded
    assert (
        batch["tokens"].shape[:2] == batch["token_mask"].shape and batch["token_mask"].any(1).all()
    )
    (batch["tokens"] * batch["token_mask"][..., None]).sum().backward()
    assert encoder.model.token_embedding.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- DDP


def _ddp_data() -> CachedPairs:
    # 6 videos, 8 captions: every global batch of 8 repeats videos, across the two ranks too
    data = make_pairs(6, 2, seed=12)
    keep = [0, 1, 2, 4, 6, 8, 10, 11]
    return CachedPairs(data.frames, data.text[keep], data.caption_to_video[keep], mask=data.mask)


def _ddp_cfg(**kw) -> TrainConfig:
    return _cfg(batch_size=8, grad_clip=None, warmup=0, lr=1e-3, **kw)


def _one_step(trainer: Trainer) -> dict:
    out = trainer.train_step(next(iter(trainer.loader(0))))
    grads = {
        n: p.grad.clone() for n, p in trainer.objective.named_parameters() if p.grad is not None
    }
    return {"loss": out["loss"], "grads": grads}


def _ddp_worker(out_dir: str) -> None:
    """Runs in each of two processes started with torchrun-style environment variables."""
    trainer = Trainer(_head(), _ddp_data(), _ddp_cfg())  # initialises the gloo group itself
    step = _one_step(trainer)
    local_batch = next(iter(trainer.loader(0)))["caption_index"].tolist()
    long_data = make_pairs(8, 4, seed=13)
    result = fit(
        _head(), long_data, long_data, _ddp_cfg(epochs=2, checkpoint_dir=Path(out_dir) / "ckpt")
    )
    rank = trainer.rank
    torch.save(
        {
            **step,
            "local_batch": local_batch,
            "final": result.final_state,
            "history": result.history,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )


def test_two_process_ddp_matches_one_process_on_the_global_batch(tmp_path: Path):
    from _launch import run_ranks

    run_ranks("test_train", "_ddp_worker", tmp_path, world_size=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    single = Trainer(_head(), _ddp_data(), _ddp_cfg())
    reference = _one_step(single)
    assert (
        ranks[0]["local_batch"] + ranks[1]["local_batch"]
        == next(iter(single.loader(0)))["caption_index"].tolist()
    )
    for res in ranks:
        assert res["loss"] == pytest.approx(reference["loss"], rel=1e-5)
        assert res["grads"].keys() == reference["grads"].keys()
        for name, grad in reference["grads"].items():
            assert torch.allclose(res["grads"][name], grad, rtol=1e-4, atol=1e-6), name

    # a whole run: both ranks end identical, and equal to the single-process run
    long_data = make_pairs(8, 4, seed=13)
    alone = fit(_head(), long_data, long_data, _ddp_cfg(epochs=2))
    for name, value in alone.final_state["model"].items():
        assert torch.equal(ranks[0]["final"]["model"][name], ranks[1]["final"]["model"][name]), name
        assert torch.allclose(ranks[0]["final"]["model"][name], value, atol=1e-5), name
    assert [r["train_loss"] for r in ranks[0]["history"]] == pytest.approx(
        [r["train_loss"] for r in alone.history], rel=1e-5
    )
    log = json.loads((tmp_path / "ckpt" / "train_log.json").read_text())
    assert len(log["history"]) == 2
    saved = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert len(saved["rng"]) == 2  # every rank's RNG state, for an exact resume
