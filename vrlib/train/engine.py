"""The engine: ``Trainer``, ``fit`` and the run loop, in plain sight in one file.

``Trainer`` holds the optimiser, schedule, AMP, one step and the checkpointable state; ``fit``
drives it epoch by epoch with its bookkeeping (``_Run``), as nanoGPT keeps its loop in one file.

Read top to bottom: ``Trainer`` -> the check that data and encoder fit the mode ->
``TrainResult`` -> ``fit`` (the epoch loop) -> ``_Run`` (history, best epoch, files).

A little over 400 lines on purpose: the step, the epoch loop and the bookkeeping around them are
read together, so they stay in one file rather than being split at an arbitrary line.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vrlib.io import atomic_save_torch, atomic_write_text, remove_stale_temporaries, write_json
from vrlib.losses import ContrastiveLoss
from vrlib.train.checkpoint import (
    TrainResult,
    _check_resume_config,
    _cpu_state,
    _csv,
    _save_checkpoint,
    rng_state,
    seed_everything,
    set_rng_state,
)
from vrlib.train.config import TrainConfig, lr_factor
from vrlib.train.data import CachedPairs, EndToEndPairs, _check_mode, _check_twin_batches
from vrlib.train.evaluate import _flatten_metrics, evaluate_model
from vrlib.train.objective import _head_name, _make_trainable, _Objective, _to_device, param_groups
from vrlib.train.runtime import _amp_dtype, _distributed_context, _resolve_device
from vrlib.train.sampler import ContrastiveBatchSampler, _global_batch, _keep_batch


class Trainer:
    """Optimiser, schedule, AMP, one training step and the checkpointable state of a run.

    ``fit`` drives it epoch by epoch; tests and benchmarks call ``train_step`` directly.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset,
        cfg: TrainConfig,
        encoder: Any = None,
        text_side: nn.Module | None = None,
    ) -> None:
        _check_mode(cfg, train_data, encoder, "train_data", text_side)
        _check_twin_batches(cfg, train_data)
        self.cfg, self.head, self.encoder, self.data = cfg, model, encoder, train_data
        self.text_side = text_side
        self.rank, self.world_size, local_rank = _distributed_context()
        self.device = _resolve_device(cfg, local_rank)
        seed_everything(cfg.seed + self.rank)
        self.amp_dtype = _amp_dtype(cfg, self.device)
        if cfg.temperature is None:  # end_to_end only (TrainConfig checks): the encoder's own scale
            self.loss = ContrastiveLoss.from_logit_scale(
                encoder.model.logit_scale, learnable=cfg.learn_temperature
            )
        else:
            self.loss = ContrastiveLoss(cfg.temperature, learnable=cfg.learn_temperature)
        self.objective = _Objective(model, self.loss, encoder, text_side).to(self.device)
        if encoder is not None:
            _make_trainable(encoder)
        self.trainable = [p for p in self.objective.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError(
                f"{_head_name(model)}: nothing to train (no trainable parameters and learn_temperature=False)"
            )
        self.step_module: nn.Module = self.objective
        if self.world_size > 1:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.objective, find_unused_parameters=cfg.ddp_find_unused_parameters
            )
        self.sampler = ContrastiveBatchSampler(
            train_data.caption_to_video, _global_batch(cfg, train_data, self.world_size),
            sampling=cfg.sampling, seed=cfg.seed, rank=self.rank, world_size=self.world_size,
            twin_of=getattr(train_data, "twin_of", None) if cfg.twin_batches else None,
        )  # fmt: skip
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        # foreach: one kernel per step for all tensors instead of a Python loop over them; on CPU
        # torch defaults to the loop, which cost ~40% of an end-to-end vrlib-tiny step. The
        # updates are bitwise the same (checked on vrlib-tiny's parameters).
        self.optimizer = torch.optim.AdamW(
            self._groups(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, foreach=True
        )
        warmup = cfg.warmup_steps(self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, self.total_steps, cfg.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.epoch, self.step = 0, 0

    def _groups(self) -> list[dict]:
        parts, lrs = [("head", self.head), ("loss", self.loss)], [self.cfg.lr, self.cfg.lr]
        if self.encoder is not None:
            parts.append(("encoder", self.encoder.model))
            lrs.append(self.cfg.encoder_lr or self.cfg.lr * 1e-3)
        if self.text_side is not None:
            parts.append(("text_side", self.text_side))
            lrs.append(self.cfg.text_lr or self.cfg.lr)
        return param_groups(parts, lrs, self.cfg.weight_decay)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def loader(self, epoch: int) -> DataLoader:
        """This rank's batches of ``epoch`` (worker seeds from a per-epoch generator, not global RNG).

        Data with a ``set_epoch(epoch)`` method is told the epoch first (like torch's
        DistributedSampler): pairs whose frames or captions change per epoch swap them there.
        """
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return DataLoader(
            self.data, batch_sampler=self.sampler, collate_fn=_keep_batch,
            num_workers=self.cfg.num_workers, generator=gen,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )  # fmt: skip

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, Any], timing: bool = False) -> dict[str, float]:
        """One optimiser step on this rank's part of a global batch.

        Returns ``loss`` (the global-batch loss), ``grad_norm`` (before clipping), ``lr`` (of
        the head) and, with ``timing``, seconds spent in ``forward``, ``backward`` and ``optim``
        (synchronising CUDA, so leave it off in real runs).
        """
        sync = (
            (lambda: torch.cuda.synchronize(self.device))
            if timing and self.device.type == "cuda"
            else (lambda: None)
        )
        t0 = time.perf_counter()
        self.objective.train()
        self.optimizer.zero_grad(set_to_none=True)
        batch = _to_device(batch, self.device)
        with self.autocast():
            loss = self.step_module(batch)
        sync()
        t1 = time.perf_counter()
        self.scaler.scale(loss).backward()
        sync()
        t2 = time.perf_counter()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, max_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.loss.clamp_()
        self.step += 1
        sync()
        out = {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": lr}
        if timing:
            out.update(forward=t1 - t0, backward=t2 - t1, optim=time.perf_counter() - t2)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, schedule, scaler, RNGs."""
        rng = rng_state()
        if self.world_size > 1:
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, rng)
            rng_by_rank = gathered
        else:
            rng_by_rank = [rng]
        state = {
            "version": 1,
            "epoch": self.epoch,
            "step": self.step,
            "config": self.cfg.model_dump(mode="json"),
            "model": _cpu_state(self.head),
            "loss": _cpu_state(self.loss),
            "logit_scale": float(self.loss.logit_scale.detach()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_by_rank,
            "sampler": {
                "seed": self.cfg.seed,
                "next_epoch": self.epoch,
                "sampling": self.cfg.sampling,
            },
        }
        if self.encoder is not None:
            state["encoder"] = _cpu_state(self.encoder.model)
        if self.text_side is not None:
            state["text_side"] = _cpu_state(self.text_side)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_resume_config(state["config"], self.cfg)
        self.head.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        if self.encoder is not None:
            self.encoder.model.load_state_dict(state["encoder"])
        if self.text_side is not None:
            if "text_side" not in state:
                raise ValueError(
                    "cannot resume: the checkpoint has no text side, this run trains one"
                )
            self.text_side.load_state_dict(state["text_side"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        if self.rank < len(state["rng"]):
            set_rng_state(state["rng"][self.rank])
        else:
            warnings.warn(
                f"checkpoint has no RNG state for rank {self.rank}; reseeding", stacklevel=2
            )
            seed_everything(self.cfg.seed + self.rank + 7919 * self.epoch)


def fit(
    model: nn.Module,
    train_data: CachedPairs | EndToEndPairs,
    val_data: CachedPairs | EndToEndPairs | None,
    cfg: TrainConfig | dict[str, Any],
    *,
    encoder: Any = None,
    text_side: nn.Module | None = None,
) -> TrainResult:
    """Train ``model`` (a temporal head) contrastively; evaluate on ``val_data`` each epoch.

    Args:
        model: a ``TemporalHead`` (vrlib.models) or anything with the same interface; trained in
            place. A head without parameters (meanP) still works: only the temperature trains.
        train_data, val_data: ``CachedPairs`` (mode "cached") or ``EndToEndPairs`` ("end_to_end").
        cfg: a ``TrainConfig`` or a dict of its fields.
        encoder: the ``ClipEncoder`` to fine-tune in "end_to_end" mode (trained in place).
        text_side: a caption side trained on cached text inputs (``vrlib.models.build_text_side``;
            mode "cached" only, trained in place): the head's ``text_side`` then reads
            ``text_side(batch["text_inputs"])``. Its own lr group (``cfg.text_lr``), saved as
            ``"text_side"`` in checkpoints and in ``best_state`` / ``final_state``.

    With ``cfg.checkpoint_dir`` the run writes ``last.pt`` (every epoch), ``best.pt``,
    ``train_log.json``, ``train_log.csv`` and ``config.json`` there (rank 0, atomically), and with
    ``cfg.resume`` a later call continues from ``last.pt`` (a finished run returns at once).
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.model_validate(cfg)
    trainer = Trainer(model, train_data, cfg, encoder, text_side)
    if val_data is not None:
        _check_mode(cfg, val_data, encoder, "val_data", text_side)
    run = _Run(trainer, val_data)
    run.maybe_resume()
    try:
        for epoch in range(trainer.epoch, cfg.epochs):
            row = run.train_epoch(epoch)
            if val_data is not None and _eval_due(cfg, epoch):
                row.update(run.validate())
            trainer.epoch = epoch + 1
            run.end_epoch(row)
    finally:
        if encoder is not None:  # its weights changed in place: feature caches must not reuse them
            encoder.model.eval()
            if hasattr(encoder, "invalidate_fingerprint"):
                encoder.invalidate_fingerprint()
    return run.result()


def _eval_due(cfg: TrainConfig, epoch: int) -> bool:
    last = epoch + 1 == cfg.epochs
    return last or (cfg.eval_every_epochs > 0 and (epoch + 1) % cfg.eval_every_epochs == 0)


class _Run:
    """Bookkeeping of one ``fit`` call: history, best epoch, files (rank 0 only)."""

    def __init__(self, trainer: Trainer, val_data: Any) -> None:
        self.t, self.val_data, self.cfg = trainer, val_data, trainer.cfg
        self.history: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"epoch", "metrics", "state"}
        self.dir = Path(self.cfg.checkpoint_dir) if self.cfg.checkpoint_dir is not None else None

    def maybe_resume(self) -> None:
        if self.dir is not None:  # what a run killed during a save left behind
            for name in ("last.pt", "best.pt"):
                remove_stale_temporaries(self.dir / name)
        if self.dir is None or not self.cfg.resume or not (self.dir / "last.pt").is_file():
            return
        state = torch.load(self.dir / "last.pt", map_location="cpu", weights_only=True)
        self.t.load_state_dict(state)
        self.history, self.steps = state["history"], state["steps"]
        if state["best"] is not None and (self.dir / "best.pt").is_file():
            best_state = torch.load(self.dir / "best.pt", map_location="cpu", weights_only=True)
            self.best = {**state["best"], "state": best_state}

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        t, start = self.t, time.perf_counter()
        losses, norms, data_s = [], [], 0.0
        bar = _progress(t, epoch)
        tick = time.perf_counter()
        for batch in t.loader(epoch):
            data_s += time.perf_counter() - tick
            out = t.train_step(batch)
            losses.append(out["loss"])
            norms.append(out["grad_norm"])
            if t.step % self.cfg.log_every == 0 or len(losses) == t.steps_per_epoch:
                self.steps.append({"step": t.step, "epoch": epoch + 1, **out})
                bar.set_postfix(loss=f"{out['loss']:.4f}", lr=f"{out['lr']:.2e}")
            bar.update()
            tick = time.perf_counter()
        bar.close()
        return {
            "epoch": epoch + 1,
            "step": t.step,
            "train_loss": float(np.mean(losses)),
            "grad_norm": float(np.mean(norms)),
            "lr": t.optimizer.param_groups[0]["lr"],
            "logit_scale": float(t.loss.scale().detach()),
            "time_s": time.perf_counter() - start,
            "data_s": data_s,
        }

    def validate(self) -> dict[str, Any]:
        metrics = evaluate_model(
            self.t.head, self.val_data, encoder=self.t.encoder, chunk_size=self.cfg.eval_chunk_size,
            device=self.t.device, autocast=self.t.autocast, text_side=self.t.text_side,
        )  # fmt: skip
        return _flatten_metrics(metrics)

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        score = _score(row, self.cfg.select_metric)
        improved = score is not None and (self.best is None or score > self.best["score"])
        if improved:
            self.best = {
                "epoch": row["epoch"],
                "score": score,
                "metrics": row,
                "state": self._state(),
            }
        if self.dir is None:
            return
        ckpt = self.t.state_dict()  # collective under DDP: gathers every rank's RNG state
        if self.t.is_main:
            if improved:
                atomic_save_torch(self.dir / "best.pt", self.best["state"])
            self._save(ckpt)
        if self.t.world_size > 1:
            dist.barrier()  # no rank starts the next epoch before the checkpoint exists

    def _state(self) -> dict[str, dict[str, Tensor]]:
        state = {"model": _cpu_state(self.t.head), "loss": _cpu_state(self.t.loss)}
        if self.t.encoder is not None:
            state["encoder"] = _cpu_state(self.t.encoder.model)
        if self.t.text_side is not None:
            state["text_side"] = _cpu_state(self.t.text_side)
        return state

    def _save(self, ckpt: dict[str, Any]) -> None:
        best = None if self.best is None else {k: v for k, v in self.best.items() if k != "state"}
        ckpt.update(history=self.history, steps=self.steps, best=best)
        _save_checkpoint(self.dir / "last.pt", ckpt)
        config = self.cfg.model_dump(mode="json")
        write_json(self.dir / "config.json", config)
        write_json(
            self.dir / "train_log.json",
            {"config": config, "history": self.history, "steps": self.steps},
        )
        atomic_write_text(self.dir / "train_log.csv", _csv(self.history))

    def result(self) -> TrainResult:
        has_dir = self.dir is not None
        best = self.best
        return TrainResult(
            history=self.history,
            steps=self.steps,
            best_epoch=best["epoch"] if best else None,
            best_metrics=best["metrics"] if best else None,
            best_state=best["state"] if best else None,
            final_state=self._state(),
            config=self.cfg.model_dump(mode="json"),
            log_path=self.dir / "train_log.json" if has_dir else None,
            csv_path=self.dir / "train_log.csv" if has_dir else None,
            checkpoint_path=self.dir / "last.pt" if has_dir else None,
        )


def _progress(trainer: Trainer, epoch: int):
    from tqdm.auto import tqdm

    disable = not trainer.cfg.progress or not trainer.is_main
    return tqdm(
        total=trainer.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{trainer.cfg.epochs}",
        leave=False,
        disable=disable,
    )


def _score(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(f"val_{metric}")
    if value is None:
        return None
    return -value if metric.endswith(("MdR", "MnR")) else value  # ranks: lower is better
