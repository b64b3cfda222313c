"""Joint image + video training of the space-time model, with a frame curriculum (Bain 2021, §3.2).

Why a loop of its own: the engine (``vrlib.train``) trains one kind of batch at a fixed number
of frames per epoch; Frozen in Time alternates image batches (large, one frame) with video
batches (small, several frames) and changes the number of frames between stages. This loop
reuses the engine's pieces — its contrastive loss, AdamW parameter groups, warm-up + cosine
schedule, RNG capture and atomic checkpoints, and its AMP rule (restated in ``_amp_dtype``, as the
engine's takes a whole ``TrainConfig``) — and keeps the step loop in plain sight. Frame pools,
training clips and the test protocol live in ``vrlib.train.clips``.

Choices (each changes numbers, so each is written down):

- **Steps, not epochs.** A run is ``stages``: ``[{frames: 1, steps: 10}, {frames: 4, steps: 10},
  ...]``; a step is one optimiser step on one batch. With ``data: joint`` even steps take a video
  batch and odd steps an image batch (an image is a one-frame video); ``images`` and ``videos``
  use one kind only (Table 2). The frames of a stage apply to its video batches.
- **Expansion at a stage boundary.** When a video batch first needs more frames than the model
  has learned, the temporal embedding grows in place by ``expansion`` (``zeros``, ``nearest``,
  ``bilinear``; ``vrlib.models.frozen.expand_temporal_embedding``).
- **Stateless data order.** Item ``k`` of a kind (video or image) belongs to pass
  ``e = k // n`` and sits at position ``k % n`` of permutation ``default_rng((seed, kind, e))``;
  a video's caption and its TSN segment-random frames are drawn from ``(seed, e, video)``, so
  frames are new every pass and a checkpoint only needs the two cursors.
- **Test protocol** (the paper's): frames at the final stage's count ``T``, ``max(1, views // T)``
  stride offsets per video (offset ``(j + 1/2) / k`` of each segment), embeddings averaged; so
  every model sees about ``views`` frames per test video.
- **Compute.** The FLOPs of a training step (forward + backward, text tower included) are counted
  by ``torch.utils.flop_counter`` once per batch shape, in an extra forward + backward on the
  first batch of that shape after its real step (untimed, gradients discarded: the counter's
  slow dispatch would otherwise charge the curriculum, which has more shapes, extra time); the
  optimiser's element-wise work is not counted. Wall time is training steps only.
  Both accumulate and are logged with every evaluation (Figure 4).
- **Checkpoints** (``checkpoint_dir``): ``last.pt`` written atomically every
  ``checkpoint_every`` steps, at each stage end and when the run stops; it holds weights,
  optimiser, schedule, scaler, RNG, cursors, learned frames, the FLOP table and the history, so a
  resumed run — across a stage boundary too — gives the same weights as an uninterrupted one.

The schedule and the config (stages, ``CurriculumConfig``, which batch a step takes) are in
``vrlib.train.schedule``; this module is the loop that carries them out.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrlib.io import atomic_save_torch
from vrlib.losses import ContrastiveLoss, same_video_mask
from vrlib.models.frozen import FrozenInTime, count_flops
from vrlib.train.checkpoint import rng_state, seed_everything, set_rng_state
from vrlib.train.clips import (
    ClipSet,
    encode_captions,
    encode_clips,
    geometric_mean_recall,
    train_frames,
)
from vrlib.train.config import lr_factor
from vrlib.train.objective import param_groups
from vrlib.train.schedule import CurriculumConfig, batch_kind, stage_at, stage_ends

RESUME_FREE = frozenset({"checkpoint_dir", "checkpoint_every", "device", "progress"})
_VIDEO, _IMAGE = 0, 1


# ----------------------------------------------------------------------------- data stream


def _positions(cursor: int, size: int, n: int, seed: int, kind: int) -> tuple[list[int], list[int]]:
    """Items ``cursor .. cursor + size - 1`` of the endless stream: (item indices, their pass)."""
    items, passes, orders = [], [], {}
    for pos in range(cursor, cursor + size):
        e = pos // n
        if e not in orders:
            orders[e] = np.random.default_rng((seed, kind, e)).permutation(n)
        items.append(int(orders[e][pos % n]))
        passes.append(e)
    return items, passes


def _backwards(cfg: CurriculumConfig, epoch: int, video: int) -> bool:
    """Whether ``video`` plays backwards in pass ``epoch`` (``backwards_share``), drawn from a
    stream of its own so that every other draw (frames, captions) stays what it was."""
    return bool(np.random.default_rng((cfg.seed, 11, epoch, video)).random() < cfg.backwards_share)


# ----------------------------------------------------------------------------- the run


@dataclass
class CurriculumResult:
    """What :func:`train_curriculum` returns (the model is trained in place).

    Attributes:
        history: one row per evaluation: step, frames, cum_flops, cum_train_s and the metrics.
        steps: one row per step: step, kind, frames, batch, loss, flops; a step that grew the
            temporal embedding also has ``expanded``: ``{"from", "to", "table_rms"}`` (the RMS
            row norm of the learned rows it expanded, ``FrozenInTime.temporal_table_rms``).
        flops_per_step: the counted FLOPs of each batch shape ``"kind/frames/batch"``.
        final: the last evaluation (``vrlib.metrics.evaluate``'s result + ``sim`` and the
            ``caption_embeddings`` and ``video_embeddings`` it came from), or None.
    """

    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    flops_per_step: dict[str, int]
    total_flops: int
    train_s: float
    final: dict[str, Any] | None = None


class CurriculumTrainer:
    """Optimiser, schedule, AMP, one step, data cursors and the checkpointable state of a run."""

    def __init__(self, model: FrozenInTime, tokenizer: Any, cfg: CurriculumConfig,
                 videos: ClipSet | None, images: tuple[Tensor, list[str]] | None) -> None:  # fmt: skip
        if cfg.data != "images" and videos is None:
            raise ValueError(f"data={cfg.data!r} needs training videos")
        if cfg.data != "videos" and images is None:
            raise ValueError(f"data={cfg.data!r} needs training images")
        if max(s.frames for s in cfg.stages) > model.visual.max_frames:
            raise ValueError(
                f"a stage asks for more frames than the model's max_frames={model.visual.max_frames}"
            )
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.videos, self.images = videos, images
        self.device = _device(cfg.device)
        seed_everything(cfg.seed)
        self.amp_dtype = _amp_dtype(cfg.amp, self.device)
        self.loss = ContrastiveLoss(cfg.temperature, learnable=False)
        self.model.to(self.device)
        groups = param_groups([("model", model)], [cfg.lr], cfg.weight_decay)
        self.optimizer = torch.optim.AdamW(  # foreach: as the engine's (bitwise the same, faster)
            groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, foreach=True
        )
        total = cfg.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg.warmup, total, cfg.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.cursors = {"video": 0, "image": 0}
        self.flops: dict[str, int] = {}
        self.cum_flops, self.train_s = 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.step_log: list[dict[str, Any]] = []

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- batches

    def next_batch(self, kind: str, frames: int, clips: int | None = None) -> dict[str, Any]:
        """The next batch of ``kind``: pixels (B, T, 3, S, S), caption strings, item indices;
        a video batch holds ``clips`` videos (``None``: ``video_batch``)."""
        cfg = self.cfg
        if kind == "image":
            pixels, captions = self.images
            items, _ = _positions(
                self.cursors["image"], cfg.image_batch, len(captions), cfg.seed, _IMAGE
            )
            self.cursors["image"] += cfg.image_batch
            return {"pixels": pixels[items][:, None], "captions": [captions[i] for i in items],
                    "index": torch.as_tensor(items)}  # fmt: skip
        v, size = self.videos, clips or cfg.video_batch
        items, passes = _positions(self.cursors["video"], size, len(v.frames), cfg.seed, _VIDEO)
        self.cursors["video"] += size
        clips, captions = [], []
        for vid, e in zip(items, passes, strict=True):
            pool, idx = v.frames[vid], train_frames(len(v.frames[vid]), frames, cfg.seed, e, vid)
            if cfg.backwards_share and _backwards(cfg, e, vid):
                idx = idx[::-1].copy()
            clips.append(pool[torch.from_numpy(idx)])
            caps = v.by_video[vid]
            pick = np.random.default_rng((cfg.seed, 7, e, vid)).integers(len(caps))
            captions.append(v.captions[caps[pick]])
        return {"pixels": torch.stack(clips), "captions": captions, "index": torch.as_tensor(items)}

    # -- one step

    def _forward_backward(self, batch: dict[str, Any]) -> Tensor:
        pixels = batch["pixels"].to(self.device, torch.float32)
        ids = self.tokenizer(batch["captions"]).to(self.device)
        with self.autocast():
            video = self.model.encode_video(pixels)  # (B, E)
            text = self.model.encode_text(ids)  # (B, E)
            ignore = same_video_mask(batch["index"].to(self.device))
            loss = self.loss(text @ video.T, ignore=ignore if ignore.any() else None)
        self.scaler.scale(loss).backward()
        return loss

    def train_step(self) -> dict[str, Any]:
        """One optimiser step; expands the temporal embedding first when a stage needs it."""
        cfg, step = self.cfg, self.step
        kind, stage = batch_kind(cfg, step), stage_at(cfg.stages, step)
        frames = stage.frames if kind == "video" else 1
        expanded = None
        if frames > self.model.frames:
            expanded = {"from": self.model.frames, "to": frames,
                        "table_rms": self.model.temporal_table_rms()}  # fmt: skip
            self.model.expand_frames(frames, cfg.expansion)
        batch = self.next_batch(kind, frames, stage.clips)
        start = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._forward_backward(batch)
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.train_s += time.perf_counter() - start
        key = f"{kind}/{frames}/{len(batch['captions'])}"
        if key not in self.flops:  # counted once per batch shape, in an extra untimed pass
            self.flops[key] = count_flops(lambda: self._forward_backward(batch))
            self.optimizer.zero_grad(set_to_none=True)
        self.cum_flops += self.flops[key]
        row = {"step": self.step, "kind": kind, "frames": frames, "loss": float(loss.detach()),
               "grad_norm": float(norm), "flops": self.flops[key]}  # fmt: skip
        if expanded:
            row["expanded"] = expanded
        self.step_log.append(row)
        return row

    # -- checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1, "config": self.cfg.model_dump(mode="json"), "step": self.step,
            "frames": self.model.frames, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_state(), "cursors": dict(self.cursors),
            "flops": dict(self.flops), "cum_flops": self.cum_flops, "train_s": self.train_s,
            "history": self.history, "steps": self.step_log,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved, now = state["config"], self.cfg.model_dump(mode="json")
        changed = sorted(k for k in now if k not in RESUME_FREE and saved.get(k) != now[k])
        if changed:
            raise ValueError(
                f"cannot resume: the checkpoint was trained with other settings {changed}; "
                "use another checkpoint_dir"
            )
        self.model.load_state_dict(state["model"])
        self.model.frames = state["frames"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step, self.cursors, self.flops = state["step"], state["cursors"], state["flops"]
        self.cum_flops, self.train_s = state["cum_flops"], state["train_s"]
        self.history, self.step_log = state["history"], state["steps"]

    def save(self) -> None:
        if self.cfg.checkpoint_dir is not None:
            atomic_save_torch(Path(self.cfg.checkpoint_dir) / "last.pt", self.state_dict())

    def maybe_resume(self) -> bool:
        path = (
            None if self.cfg.checkpoint_dir is None else Path(self.cfg.checkpoint_dir) / "last.pt"
        )
        if path is None or not path.is_file():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True


def _device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The engine's rule: fp32 on CPU by default; on CUDA bf16 where supported, else fp16."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if amp == "fp16" else torch.bfloat16


# ----------------------------------------------------------------------------- evaluation


def _evaluate(trainer: CurriculumTrainer, clips: ClipSet) -> dict[str, Any]:
    """``vrlib.metrics.evaluate`` on ``clips`` by the test protocol, with the similarities
    (``sim``) and both sides' embeddings (``caption_embeddings``, ``video_embeddings``), which a
    study's instruments reuse."""
    from vrlib.metrics import evaluate

    cfg = trainer.cfg
    captions = encode_captions(trainer.model, trainer.tokenizer, clips.captions)
    videos = encode_clips(trainer.model, clips, cfg.final_frames, cfg.views, cfg.expansion)
    sim = captions @ videos.T
    result = evaluate(sim, clips.caption_to_video)
    result |= {"sim": sim, "caption_embeddings": captions, "video_embeddings": videos}
    row = {"step": trainer.step, "frames": trainer.model.frames, "cum_flops": trainer.cum_flops,
           "cum_train_s": round(trainer.train_s, 3), "geo_mean": geometric_mean_recall(result)}  # fmt: skip
    row.update({f"t2v_{k}": float(result["t2v"][k]) for k in ("R@1", "R@5", "R@10", "MdR")})
    trainer.history.append(row)
    return result


# ----------------------------------------------------------------------------- fit


def train_curriculum(
    model: FrozenInTime,
    tokenizer: Any,
    cfg: CurriculumConfig | dict[str, Any],
    *,
    videos: ClipSet | None = None,
    images: tuple[Tensor, list[str]] | None = None,
    test: ClipSet | None = None,
    until: int | None = None,
    progress: bool = False,
) -> CurriculumResult:
    """Train ``model`` in place by the schedule of ``cfg``; evaluate on ``test`` along the way.

    Args:
        model: a :class:`FrozenInTime` (e.g. from ``build_frozen``), trained in place.
        tokenizer: the expert's tokenizer (list of str -> (B, L) ids).
        cfg: a :class:`CurriculumConfig` or a dict of its fields.
        videos: training videos; images: ``(pixels (N, 3, S, S), captions)`` training images.
        test: evaluated every ``cfg.eval_every`` steps and at the end (None: never).
        until: stop after this step (a checkpoint is written; call again to resume).
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    cfg = cfg if isinstance(cfg, CurriculumConfig) else CurriculumConfig.model_validate(cfg)
    trainer = CurriculumTrainer(model, tokenizer, cfg, videos, images)
    trainer.maybe_resume()
    total = cfg.total_steps if until is None else min(until, cfg.total_steps)
    ends = set(stage_ends(cfg.stages))
    final = None
    bar = tqdm(total=total, initial=trainer.step, disable=not progress, leave=False, desc="steps")
    while trainer.step < total:
        row = trainer.train_step()
        bar.update()
        bar.set_postfix(loss=f"{row['loss']:.3f}", frames=row["frames"])
        every = cfg.checkpoint_every
        if trainer.step in ends or (every and trainer.step % every == 0):
            trainer.save()
        due = cfg.eval_every and trainer.step % cfg.eval_every == 0
        if test is not None and (due or trainer.step == cfg.total_steps):
            final = _evaluate(trainer, test)
    bar.close()
    trainer.save()
    return CurriculumResult(
        history=trainer.history, steps=trainer.step_log, flops_per_step=dict(trainer.flops),
        total_flops=trainer.cum_flops, train_s=trainer.train_s, final=final,
    )  # fmt: skip
