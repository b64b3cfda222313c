"""The expert's training run: AdamW + warm-up + cosine, epochs, checkpoints (recipes and
settings in :mod:`vrlib.pretrain.config`).

The loop is kept in plain sight (nanoGPT style); see the package docstring for why it is built so.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlib.data.caption_ceiling import MissingAttributes
from vrlib.data.minimal_pairs import hard_batches, image_records, partner_lists
from vrlib.encoders import ClipEncoder, load_clip
from vrlib.encoders.weights import quiet_random_init_warning
from vrlib.io import atomic_save_torch, write_json
from vrlib.pretrain.config import MODEL_NAME, PretrainConfig, config_record
from vrlib.pretrain.images import (
    _shift,
    evaluate_image_text,
    image_set_sha,
    kept_images,
    load_image_set,
)

CHECKPOINT_VERSION = 1


def sidecar_path(out_path: str | os.PathLike) -> Path:
    """``<out>.json``: the summary written next to a checkpoint."""
    return Path(f"{out_path}.json")


# ----------------------------------------------------------------------------- data


def adamw_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    """AdamW as in open_clip: no weight decay on gains, biases, 1-d embeddings and the temperature."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:  # a locked text tower (``text_from``) is left out
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the base lr over ``warmup`` steps, then cosine decay to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@dataclass
class _Run:
    """Everything one training run holds, so the loop below reads top to bottom."""

    cfg: PretrainConfig
    encoder: ClipEncoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    train_pixels: torch.Tensor  # (N, 3, S, S) float16
    train_tokens: torch.Tensor  # (N, L)
    val_pixels: torch.Tensor
    val_captions: list[str]
    partners: list[list[int]]  # minimal-pair partners of each train image (hard negatives)
    batch_size: int  # cfg.batch_size, or fewer when the train split is smaller
    warmup: int
    history: list[dict] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def model(self) -> torch.nn.Module:
        return self.encoder.model

    @property
    def batches(self) -> int:
        """Steps per epoch; the ragged tail is dropped so every step contrasts a full batch."""
        return len(self.train_pixels) // self.batch_size


def _train_epoch(run: _Run, epoch: int, loss_fn: torch.nn.Module) -> float:
    """One pass over the shuffled training set; returns the mean loss."""
    gen = epoch_generator(run.cfg.seed, epoch)
    order = torch.randperm(len(run.train_pixels), generator=gen)
    batches = hard_batches(order, run.partners, run.batch_size, run.cfg.hard_negatives, gen)
    on_cuda = run.device.type == "cuda"
    losses = []
    bar = tqdm(batches, desc=f"pretrain epoch {epoch + 1}/{run.cfg.epochs}", leave=False)
    for idx in bar:
        images = _shift(run.train_pixels[idx].float(), run.cfg.shift, gen).to(run.device)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=on_cuda):
            image_emb, text_emb, logit_scale = run.model(
                images, run.train_tokens[idx].to(run.device)
            )
        loss = loss_fn(image_emb.float(), text_emb.float(), logit_scale.float())
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        with torch.no_grad():
            run.model.logit_scale.clamp_(0, math.log(100))  # CLIP's cap on the temperature
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        run.history.append(
            {"step": run.scheduler.last_epoch, "epoch": epoch, "loss": losses[-1], "lr": lr}
        )
    return float(np.mean(losses))


def _load_resume(out_path: Path, cfg: PretrainConfig) -> dict | None:
    if not out_path.is_file():
        return None
    ckpt = torch.load(out_path, map_location="cpu", weights_only=True)
    saved = ckpt.get("config", {})
    wanted = config_record(cfg)
    differ = {k: (saved.get(k), wanted.get(k)) for k in saved.keys() | wanted.keys()
              if saved.get(k) != wanted.get(k)}  # fmt: skip
    if differ:
        raise ValueError(
            f"{out_path}: an existing checkpoint was trained with other settings {differ} "
            "(saved, requested); delete it or choose another output path"
        )
    return ckpt


def untrained_expert(cfg: PretrainConfig, device: torch.device | str = "cpu") -> ClipEncoder:
    """The expert before its first step: random weights (seeded), which is the point here, so
    open_clip's "No pretrained weights loaded ... initialized randomly" is not shown. A random
    model loaded anywhere else (``load_clip(name, None)``) still warns."""
    with quiet_random_init_warning():
        return load_clip(cfg.model_name, device=device, precision="fp32", init_seed=cfg.seed)


# open_clip's CLIP keeps its text tower at the top level, its image tower under ``visual.``;
# ``logit_scale`` is shared and stays trainable.
TEXT_TOWER = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.",
              "text_projection")  # fmt: skip


def lock_text_tower(model: torch.nn.Module, donor_checkpoint: str | os.PathLike) -> None:
    """Copy the text tower of another expert's checkpoint into ``model`` and freeze it.

    Why: a small ViT trained from scratch on these stills never learns to read direction, and
    its text side, trained only against it, learns no more; a text tower that already reads it
    (vrlib-tiny's) gives the image tower a target worth learning (``PretrainConfig.text_from``).
    Raises ValueError when the donor's text tower does not fit ``model``'s.
    """
    donor = torch.load(donor_checkpoint, map_location="cpu", weights_only=True)["model"]
    text = {k: v for k, v in donor.items() if k.startswith(TEXT_TOWER)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(TEXT_TOWER)}
    misfit = sorted(k for k in own.keys() | text.keys()
                    if k not in text or k not in own or text[k].shape != own[k].shape)  # fmt: skip
    if misfit or not text:
        raise ValueError(
            f"{donor_checkpoint}: its text tower does not fit this model's "
            f"(keys missing or of other shapes: {misfit[:5] or 'no text tower'})"
        )
    model.load_state_dict(text, strict=False)
    for name, p in model.named_parameters():
        if name.startswith(TEXT_TOWER):
            p.requires_grad_(False)


def text_tower_record(donor_checkpoint: str | os.PathLike) -> dict[str, Any]:
    """What identifies a locked text tower's donor: its settings and the images it saw. Kept in
    the summary, so ``ensure_expert`` retrains an expert whose donor was trained again."""
    donor = torch.load(donor_checkpoint, map_location="cpu", weights_only=True)
    return {"config": donor.get("config"), "image_set_sha": donor["summary"].get("image_set_sha")}


def _start(cfg: PretrainConfig, world_dir: Path, device: torch.device, ckpt: dict | None,
           text_tower: str | os.PathLike | None) -> _Run:  # fmt: skip
    """Build the model, load the data once, and restore a checkpoint's state when resuming."""
    encoder = untrained_expert(cfg, device)
    if cfg.text_from:
        lock_text_tower(encoder.model, text_tower)
    train_pixels, train_captions = load_image_set(
        world_dir, "train", encoder, without_words=cfg.without_words
    )
    val_pixels, val_captions = load_image_set(world_dir, "val", encoder)
    batch_size = min(cfg.batch_size, len(train_pixels))
    total = len(train_pixels) // batch_size * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(100, max(1, total // 10))
    optimizer = adamw_optimizer(encoder.model, cfg)
    run = _Run(
        cfg=cfg,
        encoder=encoder,
        optimizer=optimizer,
        scheduler=warmup_cosine_schedule(optimizer, warmup, total),
        device=device,
        train_pixels=train_pixels,
        train_tokens=encoder.tokenizer(train_captions),  # (N, L)
        val_pixels=val_pixels,
        val_captions=val_captions,
        partners=_partners(world_dir, cfg) if cfg.hard_negatives else [],
        batch_size=batch_size,
        warmup=warmup,
    )
    if ckpt is not None:
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        run.history, run.elapsed = ckpt["history"], ckpt["summary"]["wall_time_s"]
    return run


def _partners(world_dir: Path, cfg: PretrainConfig) -> list[list[int]]:
    """Minimal-pair partners of the training images, indexed as ``load_image_set`` returns them."""
    records = image_records(world_dir, "train")
    if cfg.without_words:
        keep = kept_images(world_dir, "train", cfg.without_words)
        records = [r for r, k in zip(records, keep, strict=True) if k]
    return partner_lists(records)


def pretrain_expert(
    world_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup_steps: int | None = None,
    seed: int = 0,
    shift: int = 4,
    hard_negatives: float = 0.0,
    model_name: str = MODEL_NAME,
    without_words: tuple[str, ...] = (),
    text_from: str = "",
    text_tower: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    log_every: int = 1,
) -> dict[str, Any]:
    """Train a small CLIP (``vrlib-tiny`` by default) on a world's train-split images; evaluate on val.

    Args:
        world_dir: a world written by ``vrlib.data.synthetic`` (needs ``annotations/images.jsonl``
            and ``images/``; videos are never read).
        out_path: checkpoint file; ``<out_path>.json`` receives the summary.
        epochs, batch_size, lr, weight_decay, warmup_steps, seed, shift, hard_negatives,
            model_name, without_words, text_from: see :class:`PretrainConfig`; ``model_name`` is
            a registered open_clip config (``vrlib/model_configs``), and the checkpoint loads with
            ``load_clip(model_name, pretrained=out_path)``.
        text_tower: with ``text_from``, the checkpoint of that model's expert whose text tower
            is copied and locked (``ensure_expert`` trains it first).
        device: default CUDA when available (bf16 autocast), else CPU (fp32).
        log_every: print the held-out metrics every this many epochs (and after the last one).

    Returns:
        The summary: held-out ``val`` metrics (``t2i_R@1``, ``i2t_R@1``, ...), final train loss,
        steps, image counts, wall time, and ``resumed_from_epoch``.

    Raises:
        ValueError: an existing checkpoint at ``out_path`` was trained with other settings;
            ``text_from`` without a ``text_tower`` (or one that does not fit).
    """
    from open_clip.loss import ClipLoss

    cfg = PretrainConfig(
        epochs,
        batch_size,
        lr,
        weight_decay,
        warmup_steps,
        seed,
        shift,
        model_name=model_name,
        hard_negatives=hard_negatives,
        without_words=tuple(without_words),
        text_from=text_from,
    )
    if text_from and text_tower is None:
        raise ValueError(f"text_from={text_from!r} needs text_tower, that model's checkpoint")
    out_path, world_dir = Path(out_path).expanduser(), Path(world_dir).expanduser()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = _load_resume(out_path, cfg)
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs:
        return ckpt["summary"]
    start_epoch = ckpt["epoch"] if ckpt is not None else 0
    if start_epoch:
        print(f"pretrain: resuming {out_path} after epoch {start_epoch}/{cfg.epochs}")
    run = _start(cfg, world_dir, device, ckpt, text_tower)
    loss_fn = ClipLoss()

    run.model.train()
    summary: dict[str, Any] = {}
    images_sha = image_set_sha(world_dir)
    donor = {"text_tower": text_tower_record(text_tower)} if cfg.text_from else {}
    ceiling = held_out_ceiling(world_dir)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        mean_loss = _train_epoch(run, epoch, loss_fn)
        val = evaluate_image_text(run.encoder, run.val_pixels, run.val_captions)
        run.elapsed += time.perf_counter() - t0
        summary = {
            "checkpoint": str(out_path),
            "model_name": cfg.model_name,
            "world_dir": str(world_dir),
            "epochs_done": epoch + 1,
            "steps": run.scheduler.last_epoch,
            "warmup_steps": run.warmup,
            "train_images": len(run.train_pixels),
            "final_train_loss": mean_loss,
            "val": val,
            "val_ceiling": ceiling,
            "val_fraction_of_ceiling": _fraction_of_ceiling(val, ceiling),
            "wall_time_s": run.elapsed,
            "device": str(device),
            "resumed_from_epoch": start_epoch,
            "config": config_record(cfg),
            "image_set_sha": images_sha,
            **donor,
        }
        _save(out_path, run, epoch + 1, summary)
        if (epoch + 1) % log_every == 0 or epoch + 1 == cfg.epochs:
            print(
                f"pretrain epoch {epoch + 1}/{cfg.epochs}: loss {mean_loss:.3f}, val image->text "
                f"R@1 {val['i2t_R@1']:.1f}, text->image R@1 {val['t2i_R@1']:.1f} ({run.elapsed:.0f} s)"
            )
    run.model.eval()
    return summary


def held_out_ceiling(world_dir: str | os.PathLike) -> dict[str, float] | None:
    """The R@K an ideal model reaches on the val images given the captions' ambiguity
    (``vrlib.data.caption_ceiling``); None for a world whose images.jsonl has no attribute records."""
    from vrlib.data.caption_ceiling import world_ceiling

    try:
        return world_ceiling(world_dir, "val")
    except MissingAttributes:
        return None


def _fraction_of_ceiling(val: dict, ceiling: dict | None) -> dict[str, float] | None:
    if ceiling is None:
        return None
    keys = ("t2i_R@1", "i2t_R@1")
    return {k: val[k] / ceiling[k] if ceiling[k] else math.nan for k in keys}


def _save(out_path: Path, run: _Run, epoch: int, summary: dict) -> None:
    """Checkpoint (loadable by ``load_clip(pretrained=...)`` and ``torch.load(weights_only=True)``) + sidecar JSON."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    ckpt = {
        "version": CHECKPOINT_VERSION,
        "model_name": run.cfg.model_name,
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "epoch": epoch,
        "config": config_record(run.cfg),
        "rng": rng,
        "history": run.history,
        "summary": summary,
    }
    atomic_save_torch(out_path, ckpt)
    write_json(sidecar_path(out_path), summary)
