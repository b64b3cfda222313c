"""Training speed of every registered temporal head, of each trained text side, and of end-to-end
vrlib-tiny.

Why: the temporal study trains every head many times (heads x seeds x K x w); this says what one
optimiser step costs and where the time goes. Each step is split into

* data: fetching the next batch from the engine's DataLoader and moving it to the device;
* forward: head sides, (identity) gather, similarity and loss, under the engine's autocast;
* backward: ``loss.backward()``;
* optim: unscale, gradient clipping, AdamW step, schedule step, temperature clamp.

Cached mode uses random frame and caption features (B=64, T=12, D=128 by default; ``--dim 512``
for ViT-B/32-sized features); TAB heads also get 16 caption tokens, double-rate heads 2T
frames. End-to-end runs ``vrlib-tiny`` (random weights) on random uint8 clips through
``Trainer.train_step`` with the meanP head, so forward/backward include the CLIP towers. The
first steps (warm-up) are not timed; numbers are medians over the timed steps. CUDA is
synchronised around each phase (``train_step(timing=True)``), so GPU phases are exact.

Run: ``.venv/bin/python benchmarks/bench_train.py`` from the repo root (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.train import CachedPairs, EndToEndPairs, TrainConfig, Trainer  # noqa: E402
from vrlib.train.objective import _to_device  # noqa: E402

PHASES = ("data", "forward", "backward", "optim")


def _cached_data(
    batch: int, frames: int, dim: int, steps: int, tokens: bool, double: bool
) -> CachedPairs:
    g = torch.Generator().manual_seed(0)
    n = batch * steps  # one caption per video: every batch has distinct videos
    kw = {}
    if tokens:
        kw["tokens"] = torch.randn(n, 16, dim, generator=g)
        kw["token_mask"] = torch.arange(16)[None] < torch.randint(4, 17, (n,), generator=g)[:, None]
    if double:
        kw["frames_2x"] = torch.randn(n, 2 * frames, dim, generator=g)
    return CachedPairs(
        torch.randn(n, frames, dim, generator=g),
        torch.randn(n, dim, generator=g),
        np.arange(n),
        **kw,
    )


def _time_steps(trainer: Trainer, warmup: int, steps: int) -> dict[str, float]:
    """Median seconds per phase over ``steps`` timed steps after ``warmup`` untimed ones."""
    it = iter(trainer.loader(0))
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        batch = _to_device(next(it), trainer.device)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        data = time.perf_counter() - t0
        out = trainer.train_step(batch, timing=True)
        if k >= warmup:
            times["data"].append(data)
            for p in PHASES[1:]:
                times[p].append(out[p])
    return {p: statistics.median(v) for p, v in times.items()}


def _row(name: str, n_params: int, t: dict[str, float]) -> str:
    total = sum(t.values())
    ms = " | ".join(f"{1000 * t[p]:.1f}" for p in PHASES)
    return f"| {name} | {n_params:,} | {1 / total:.1f} | {ms} |"


def bench_cached(args: argparse.Namespace, cfg: TrainConfig) -> list[str]:
    from vrlib.models import MODELS, build_model

    rows = []
    for name in MODELS.names():
        torch.manual_seed(0)
        head = build_model(name, dim=args.dim, num_frames=args.frames)
        data = _cached_data(
            args.batch,
            args.frames,
            args.dim,
            args.warmup + args.steps,
            head.needs_tokens,
            head.needs_double_rate,
        )
        trainer = Trainer(head, data, cfg)
        t = _time_steps(trainer, args.warmup, args.steps)
        rows.append(_row(name, sum(p.numel() for p in head.parameters()), t))
        print(rows[-1], flush=True)
    return rows


def bench_end_to_end(args: argparse.Namespace, cfg: TrainConfig) -> list[str]:
    from vrlib.encoders import load_clip
    from vrlib.models import build_model

    encoder = load_clip(
        "vrlib-tiny", device=cfg.device if cfg.device != "auto" else None, precision="fp32"
    )
    rng = np.random.default_rng(0)
    n, t = args.e2e_batch * (args.warmup + args.steps), args.e2e_frames
    videos = [rng.integers(0, 256, size=(t, 64, 64, 3), dtype=np.uint8) for _ in range(n)]
    captions = [f"caption number {i} about a moving square" for i in range(n)]
    data = EndToEndPairs(videos, captions, np.arange(n))
    head = build_model("meanP", dim=encoder.embed_dim, num_frames=t)
    e2e_cfg = cfg.model_copy(update={"mode": "end_to_end", "batch_size": args.e2e_batch})
    trainer = Trainer(head, data, e2e_cfg, encoder=encoder)
    timing = _time_steps(trainer, args.warmup, args.steps)
    n_params = sum(p.numel() for p in encoder.model.parameters())
    name = f"end-to-end vrlib-tiny + meanP (B={args.e2e_batch}, T={t}, 64x64)"
    row = _row(name, n_params, timing)
    print(row, flush=True)
    return [row]


def bench_text_sides(args: argparse.Namespace, cfg: TrainConfig) -> list[str]:
    """meanP on cached frames with each text side (vrlib-tiny's text tower, random weights):
    what a step costs when captions learn while frames stay cached."""
    from vrlib.encoders import load_clip, text_inputs
    from vrlib.models import TEXT_SIDES, build_model, build_text_side

    encoder = load_clip("vrlib-tiny", device="cpu", precision="fp32")
    n = args.batch * (args.warmup + args.steps)
    captions = [f"caption number {i} about a moving square" for i in range(n)]
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(n, args.frames, encoder.embed_dim, generator=g)
    rows = []
    for name in TEXT_SIDES.names():
        torch.manual_seed(0)
        side = build_text_side(name, encoder=encoder, dim=encoder.embed_dim)
        inputs = text_inputs(encoder, captions, hidden_block=side.hidden_block, trim=True)
        data = CachedPairs(frames, inputs["text"], np.arange(n), text_inputs=inputs)
        head = build_model("meanP", dim=encoder.embed_dim, num_frames=args.frames)
        trainer = Trainer(head, data, cfg, text_side=side)
        t = _time_steps(trainer, args.warmup, args.steps)
        label = f"meanP + text side {name} (vrlib-tiny, D={encoder.embed_dim})"
        rows.append(_row(label, sum(p.numel() for p in side.parameters()), t))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per model")
    ap.add_argument("--e2e-batch", type=int, default=16)
    ap.add_argument("--e2e-frames", type=int, default=4)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    cfg = TrainConfig(batch_size=args.batch, warmup=0, device=args.device, progress=False)

    header = "| model | trainable params | steps/s | data ms | forward ms | backward ms | optim ms |\n|---|---:|---:|---:|---:|---:|---:|"
    print(header)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    rows = bench_cached(args, cfg)
    sides = bench_text_sides(args, cfg)
    e2e = bench_end_to_end(args, cfg)
    cmd = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:])
    md = "\n".join(
        [
            "## Training steps (`benchmarks/bench_train.py`)",
            "",
            f"Command: `{cmd.strip()}` — {machine_line()}.",
            f"Cached features: B={args.batch}, T={args.frames}, D={args.dim}, random features; medians of "
            f"{args.steps} steps after {args.warmup} warm-up steps; AdamW + clipping + schedule included "
            "in optim. Parameter counts: head (cached rows), text side (text-side rows, captions trimmed to "
            "the longest), CLIP model (end-to-end row).",
            "",
            header,
            *rows,
            *sides,
            *e2e,
            "",
            f"Total benchmark time {time.perf_counter() - start:.0f} s; 1-min load average "
            f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (other processes share the "
            "cores: a load above the core count inflates every number).",
        ]
    )
    path = write_section("train", md)
    print(f"wrote section 'train' of {path}")


if __name__ == "__main__":
    main()
