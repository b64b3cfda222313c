"""Where a run executes: the process group, the device and the autocast precision.

The process group is initialised from torchrun's environment when WORLD_SIZE > 1 and left
untouched otherwise, so the same call works in a notebook.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from vrlib.train.config import TrainConfig


def _distributed_context() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group from torchrun's env."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local


def _resolve_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None = full fp32; on CUDA "auto" is bf16 where supported, else fp16 (with a GradScaler)."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cuda" and cfg.amp == "fp16":
        raise ValueError(f"amp='fp16' needs a CUDA device, got device={device}")
    return torch.float16 if cfg.amp == "fp16" else torch.bfloat16
