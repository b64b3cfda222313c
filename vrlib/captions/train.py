"""Train the world's two captioners (``clipcap-tiny``, ``blip-tiny``) on its still images.

Why: study 03 needs image captioners of different architectures and quality, and none can be
downloaded here. Like the image-text expert (``vrlib.pretrain``), they learn from the world's
train-split images and captions only (no video; the stills of motion included), so what they say
about a video frame is what an image captioner would say. Half their training images carry the
world's video nuisances (``with_video_nuisances``) at the preset's ``video_shift``, the
augmentation a real captioner meant for video frames would have had.

The loop mirrors ``vrlib.pretrain``: inputs are prepared once in memory (the frozen expert's
image embeddings for ClipCap, pixels for BLIP), AdamW with warmup and cosine decay minimises
next-word cross-entropy, every epoch writes an atomic checkpoint (model, optimizer, scheduler,
history) and rerunning resumes from it. Shuffling draws from a generator seeded by (seed, epoch),
so a resumed run equals an uninterrupted one. :func:`ensure_captioner` keeps one checkpoint per
(kind, preset, seed) under ``$VRLIB_HOME/captioners`` and retrains when its settings, the world's
images or the expert change.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vrlib.captions.base import WordVocab
from vrlib.captions.nets import BlipNet, CaptionNet, ClipCapNet, NetConfig, blip_pixels
from vrlib.io import atomic_save_torch, sha256_file, write_json

KINDS = ("clipcap-tiny", "blip-tiny")
CHECKPOINT_VERSION = 1

# Per world preset and kind. Smoke: seconds. Default: the study's captioners; measured at 1 torch
# thread, 69 CPU-s (clipcap-tiny) and 31 CPU-s (blip-tiny) of training, well inside 5 minutes.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {  # ~240 train images: enough for a notebook to run, too few to learn much
        "clipcap-tiny": {"epochs": 10, "batch_size": 32},
        "blip-tiny": {"epochs": 10, "batch_size": 32, "width": 96},
    },
    "default": {
        "clipcap-tiny": {"epochs": 10},
        "blip-tiny": {"epochs": 5, "width": 96},
    },
}


@dataclass(frozen=True)
class CaptionerConfig:
    """Everything that changes a trained captioner (saved in its checkpoint, compared on resume)."""

    kind: str
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # None: 5% of all steps, at least 1
    seed: int = 0
    width: int = 128
    layers: int = 2
    heads: int = 4
    prefix_length: int = 4
    vision_layers: int = 2
    image_size: int = 32  # BLIP's input side: 16 patches of 8 px still resolve the 5 positions
    max_tokens: int = 32
    augment_shift: float = 0.0  # strength of the world's video nuisances put on training images
    augment_share: float = 0.5  # share of training images that get them (the rest stay clean)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown captioner kind {self.kind!r}; valid: {', '.join(KINDS)}")
        for key in ("epochs", "batch_size", "width", "layers", "heads", "max_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(
                f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if not (0.0 <= self.augment_shift <= 1.0 and 0.0 <= self.augment_share <= 1.0):
            raise ValueError(
                f"augment_shift and augment_share must be in [0, 1], got {self.augment_shift}, "
                f"{self.augment_share}"
            )

    def net_config(self, vocab_size: int, embed_dim: int) -> NetConfig:
        return NetConfig(
            vocab_size=vocab_size,
            width=self.width,
            layers=self.layers,
            heads=self.heads,
            max_tokens=self.max_tokens,
            prefix_length=self.prefix_length,
            embed_dim=embed_dim,
            vision_layers=self.vision_layers,
            image_size=self.image_size,
        )


def build_net(kind: str, cfg: NetConfig) -> CaptionNet:
    """The untrained network of ``kind``."""
    return ClipCapNet(cfg) if kind == "clipcap-tiny" else BlipNet(cfg)


def captioner_path(kind: str, preset: str = "default", seed: int = 0) -> Path:
    """Checkpoint of a world captioner: ``$VRLIB_HOME/captioners/<kind>-<preset>-seed<seed>.pt``."""
    from vrlib.paths import vrlib_home

    return vrlib_home() / "captioners" / f"{kind}-{preset}-seed{seed}.pt"


# ----------------------------------------------------------------------------- data


@dataclass
class WorldImages:
    """One split of a world's still images with what the world knows about each."""

    image_ids: list[str]
    frames: np.ndarray  # uint8 (N, H, W, 3)
    captions: list[str]
    attributes: list[dict]  # {"background", "objects": [{"shape", "colour", "size", "position"}]}


def load_world_images(world_dir: str | os.PathLike, split: str) -> WorldImages:
    """Decode every image of ``split`` of a synthetic world (``annotations/images.jsonl``)."""
    from vrlib.data.datasets import load_image_captions
    from vrlib.pretrain import read_rgb

    world_dir = Path(world_dir).expanduser()
    pairs = load_image_captions(world_dir, split)  # checks the split, the file and the images
    ann = world_dir / "annotations" / "images.jsonl"
    rows = {}
    for n, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if "attributes" not in row:
                raise ValueError(f"{ann}:{n}: image {row.get('image_id')!r} has no 'attributes'")
            rows[row["path"]] = row
    if not pairs:
        raise ValueError(f"{ann}: no images in split {split!r}")
    records = [rows[str(path.relative_to(world_dir))] for path, _ in pairs]
    return WorldImages(
        image_ids=[r["image_id"] for r in records],
        frames=np.stack([read_rgb(path) for path, _ in pairs]),  # (N, H, W, 3)
        captions=[c for _, c in pairs],
        attributes=[r["attributes"] for r in records],
    )


def _inputs(kind: str, frames: np.ndarray, expert: Any, image_size: int) -> torch.Tensor:
    """What the network reads: expert embeddings (N, d) or float16 pixels (N, 3, S, S)."""
    if kind == "clipcap-tiny":
        return expert.encode_frames(frames)  # (N, d), frozen: computed once
    return torch.cat(
        [
            blip_pixels(torch.as_tensor(frames[i : i + 512]), image_size).half()
            for i in range(0, len(frames), 512)
        ]
    )


def with_video_nuisances(frames: np.ndarray, shift: float, share: float, seed: int) -> np.ndarray:
    """A copy of ``frames`` (N, H, W, 3) where ``share`` of them carry the video-only nuisances
    of strength ``shift`` (colour cast, lighting, blur, jitter: ``synthetic.nuisance``).

    Why: a captioner that will caption video frames is trained, as a real one would be, with
    augmentation that looks like what video frames suffer. Compression and the video-only
    background renditions are not reproduced on stills. Each image draws from (seed, index).
    """
    from vrlib.data.synthetic import apply_shift, sample_shift

    out = frames.copy()
    if shift <= 0 or share <= 0:
        return out
    for i in range(len(frames)):
        rng = np.random.default_rng([seed, 13, i])
        if rng.random() < share:
            out[i] = apply_shift([frames[i]], sample_shift(rng, shift, 1), rng)[0]
    return out


# ----------------------------------------------------------------------------- training


def caption_loss(net: CaptionNet, inputs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-word cross-entropy over the non-pad targets of ``tokens`` (B, L)."""
    logits = net(inputs, tokens[:, :-1])  # (B, L - 1, V)
    return F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], ignore_index=WordVocab.PAD)


@torch.no_grad()
def _val_loss(net: CaptionNet, inputs: torch.Tensor, tokens: torch.Tensor) -> float:
    net.eval()
    losses = [
        caption_loss(net, inputs[i : i + 256].float(), tokens[i : i + 256]).item()
        for i in range(0, len(inputs), 256)
    ]
    net.train()
    return float(np.mean(losses))


def _inputs_record(world_dir: Path, kind: str, expert_path: Path | None) -> dict[str, str | None]:
    """Hashes of what the captioner learns from; a change means retraining."""
    from vrlib.pretrain import image_set_sha

    uses_expert = kind == "clipcap-tiny"
    return {
        "image_set_sha": image_set_sha(world_dir),
        "expert_sha": sha256_file(expert_path) if uses_expert else None,
    }


def _load_resume(out_path: Path, cfg: CaptionerConfig, inputs: dict) -> dict | None:
    if not out_path.is_file():
        return None
    ckpt = torch.load(out_path, map_location="cpu", weights_only=True)
    differ = {
        k: (ckpt["config"].get(k), v) for k, v in asdict(cfg).items() if ckpt["config"].get(k) != v
    }
    if differ or ckpt.get("inputs") != inputs:
        what = (
            f"other settings {differ} (saved, requested)"
            if differ
            else "other images or another expert"
        )
        raise ValueError(
            f"{out_path}: an existing checkpoint was trained with {what}; delete it or choose another path"
        )
    return ckpt


def train_captioner(
    kind: str,
    world_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    expert_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Train (or resume) a world captioner on the train-split images; validate on val.

    Args:
        kind: ``"clipcap-tiny"`` or ``"blip-tiny"``.
        world_dir: a world from ``vrlib.data.synthetic``.
        out_path: checkpoint file; ``<out_path>.json`` receives the summary.
        expert_path: the frozen image-text expert (required for ``clipcap-tiny``).
        device: default CUDA when available, else CPU.
        **settings: :class:`CaptionerConfig` fields (``epochs`` is required).

    Returns:
        The summary: per-epoch ``val_loss``, steps, ``wall_time_s`` and ``cpu_time_s`` (training
        only, summed over resumed runs), ``steps_per_s``, the config and the input hashes.

    Raises:
        ValueError: an existing checkpoint at ``out_path`` was trained with other settings or inputs.
    """
    from vrlib.encoders import load_clip
    from vrlib.pretrain import adamw_optimizer, epoch_generator, warmup_cosine_schedule

    cfg = CaptionerConfig(kind=kind, **settings)
    world_dir, out_path = Path(world_dir).expanduser(), Path(out_path).expanduser()
    if kind == "clipcap-tiny" and expert_path is None:
        raise ValueError(
            "clipcap-tiny needs expert_path: the image-text expert whose embeddings it maps"
        )
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    record = _inputs_record(world_dir, kind, Path(expert_path) if expert_path else None)
    ckpt = _load_resume(out_path, cfg, record)
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs:
        return ckpt["summary"]

    uses_expert = kind == "clipcap-tiny"
    expert = (
        load_clip("vrlib-tiny", pretrained=str(expert_path), device=device) if uses_expert else None
    )
    train, val = load_world_images(world_dir, "train"), load_world_images(world_dir, "val")
    vocab = (
        WordVocab(ckpt["vocab"][len(WordVocab.SPECIALS) :])
        if ckpt
        else WordVocab.build(train.captions)
    )
    net_cfg = cfg.net_config(len(vocab), expert.embed_dim if expert else 0)
    torch.manual_seed(cfg.seed)
    net = build_net(kind, net_cfg).to(device)
    augmented = with_video_nuisances(train.frames, cfg.augment_shift, cfg.augment_share, cfg.seed)
    x_train = _inputs(kind, augmented, expert, net_cfg.image_size).to(device)
    x_val = _inputs(kind, val.frames, expert, net_cfg.image_size).to(device)
    t_train = vocab.encode(train.captions, cfg.max_tokens).to(device)  # (N, L)
    t_val = vocab.encode(val.captions, cfg.max_tokens).to(device)
    batch = min(cfg.batch_size, len(x_train))
    steps_per_epoch = len(x_train) // batch
    total = steps_per_epoch * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, total // 20)
    optimizer = adamw_optimizer(net, cfg)
    scheduler = warmup_cosine_schedule(optimizer, warmup, total)
    history, elapsed, cpu, start = [], 0.0, 0.0, 0
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        history, start = ckpt["history"], ckpt["epoch"]
        elapsed, cpu = ckpt["summary"]["wall_time_s"], ckpt["summary"]["cpu_time_s"]
        print(f"captioner {kind}: resuming {out_path} after epoch {start}/{cfg.epochs}")

    net.train()
    summary: dict[str, Any] = {}
    for epoch in range(start, cfg.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        order = torch.randperm(len(x_train), generator=epoch_generator(cfg.seed, epoch)).to(device)
        losses = []
        bar = tqdm(
            range(steps_per_epoch), desc=f"{kind} epoch {epoch + 1}/{cfg.epochs}", leave=False
        )
        for b in bar:
            idx = order[b * batch : (b + 1) * batch]
            loss = caption_loss(net, x_train[idx].float(), t_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "val_loss": _val_loss(net, x_val, t_val),
            }
        )
        summary = {
            "kind": kind,
            "checkpoint": str(out_path),
            "world_dir": str(world_dir),
            "expert_path": str(expert_path) if expert_path else None,
            "epochs_done": epoch + 1,
            "steps": scheduler.last_epoch,
            "train_images": len(x_train),
            "vocab_size": len(vocab),
            "history": history,
            "wall_time_s": elapsed,
            "steps_per_s": scheduler.last_epoch / max(elapsed, 1e-9),
            "cpu_time_s": cpu,  # CPU seconds of this process: on a loaded machine, ~ quiet wall x threads
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "config": asdict(cfg),
            "inputs": record,
        }
        atomic_save_torch(
            out_path,
            {
                "version": CHECKPOINT_VERSION,
                "kind": kind,
                "config": asdict(cfg),
                "net_config": asdict(net_cfg),
                "vocab": vocab.itos,
                "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "inputs": record,
                "summary": summary,
            },
        )
        write_json(Path(f"{out_path}.json"), summary)
        print(
            f"captioner {kind} epoch {epoch + 1}/{cfg.epochs}: train loss {history[-1]['train_loss']:.3f}, val loss {history[-1]['val_loss']:.3f} ({elapsed:.0f} s)"
        )
    net.eval()
    return summary


def ensure_captioner(
    kind: str, preset: str = "default", seed: int = 0, device: str | None = None
) -> Path:
    """The preset's trained captioner checkpoint, training it (and the world, the expert) if missing.

    A finished checkpoint with the preset's settings and the current world images and expert
    returns at once; an interrupted one resumes; one trained with other settings or inputs is
    retrained (like ``ensure_expert``).
    """
    from vrlib.paths import world_dir
    from vrlib.pretrain import ensure_expert

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if kind not in KINDS:
        raise ValueError(f"unknown captioner kind {kind!r}; valid: {', '.join(KINDS)}")
    expert = ensure_expert(preset, seed, device=device)  # also ensures the world
    world = world_dir(preset, seed)
    out = captioner_path(kind, preset, seed)
    from vrlib.data.synthetic import resolve_config

    # Trained with the preset world's video nuisances as augmentation (the README says so).
    shift = resolve_config(preset).video_shift
    settings = {**PRESETS[preset][kind], "seed": seed, "augment_shift": shift}
    if out.is_file():
        ckpt = torch.load(out, map_location="cpu", weights_only=True)
        wanted = asdict(CaptionerConfig(kind=kind, **settings))
        record = _inputs_record(world, kind, expert)
        if ckpt.get("config") != wanted or ckpt.get("inputs") != record:
            print(f"captioner {kind}: {out} was trained with other settings or inputs; retraining")
            out.unlink()
        elif ckpt["epoch"] >= settings["epochs"]:
            return out
    train_captioner(kind, world, out, expert_path=expert, device=device, **settings)
    return out
