"""GPU throughput: extraction end to end against encode-only, and training steps/s (issue 10, §3).

Why: on a GPU the goal is that ``vrlib.features.extract_frame_features`` (decode in CPU workers,
preprocess and encode on the GPU, write the cache) keeps at least half of the encoder's speed on
frames already on the GPU; and the training engine's steps/s, on cached features and end to end,
say what a study costs there. Per model (ViT-B-32 and vrlib-tiny, random weights, open_clip with
``pretrained=None``: nothing is downloaded), in one run on the same frames:

* extraction: frames/s of ``extract_frame_features`` into a fresh cache over ``--n`` videos;
* encode-only: the same frames decoded and preprocessed beforehand and moved to the device, then
  only ``encode_preprocessed`` (the device synchronised before the clock stops);
* ratio = extraction / encode-only;
* training steps/s of ``vrlib.train.Trainer`` (meanP head, AMP on CUDA): on the cached features
  just extracted, and end to end (frames and captions through the CLIP towers).

Run on the GPU machine (needs only torch, open_clip, pydantic and a video decoder)::

    python benchmarks/bench_cuda.py --videos ~/.cache/vrlib/worlds/default-seed0 --out cuda.md

It also runs on the CPU with a small ``--n`` (slowly), which is how it is tested. ``--videos`` is a
folder of ``.mp4`` files, or a world folder with a ``videos/`` subfolder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vrlib.data.datasets import RetrievalDataset, VideoItem  # noqa: E402
from vrlib.data.sampling import SamplingConfig  # noqa: E402
from vrlib.data.video import read_frames  # noqa: E402
from vrlib.encoders import load_clip  # noqa: E402
from vrlib.features import extract_frame_features  # noqa: E402
from vrlib.models import build_model  # noqa: E402
from vrlib.train import CachedPairs, EndToEndPairs, TrainConfig, Trainer  # noqa: E402

MODELS = ("ViT-B-32", "vrlib-tiny")
SAMPLING = SamplingConfig(strategy="uniform", n=12)


def _dataset(folder: Path, n: int) -> RetrievalDataset:
    videos = folder / "videos" if (folder / "videos").is_dir() else folder
    paths = sorted(videos.glob("*.mp4"))[:n]
    if not paths:
        raise SystemExit(f"--videos {folder}: no .mp4 files there (or in its videos/ folder)")
    items = [VideoItem(video_id=p.stem, path=p) for p in paths]
    return RetrievalDataset("bench", "all", videos, items, captions=[])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _extraction(ds, encoder, args, device) -> tuple[float, object]:
    """Seconds of one extraction into a fresh cache, and its features."""
    with tempfile.TemporaryDirectory() as cache:
        _sync(device)
        t0 = time.perf_counter()
        feats = extract_frame_features(
            ds, encoder, SAMPLING, cache, batch_size=args.batch, num_workers=args.workers,
            progress=False,
        )  # fmt: skip
        _sync(device)
        return time.perf_counter() - t0, feats


def _encode_only(encoder, pixels: torch.Tensor, batch: int, device: torch.device) -> float:
    """Seconds to encode preprocessed pixels that are already on the device."""
    _sync(device)
    t0 = time.perf_counter()
    for chunk in pixels.split(batch):
        encoder.encode_preprocessed(chunk, batch_size=batch)
    _sync(device)
    return time.perf_counter() - t0


def _steps_per_s(trainer: Trainer, steps: int) -> float:
    """Optimiser steps per second over ``steps`` steps after one untimed warm-up step."""
    batches, epoch = [], 0
    while len(batches) < steps + 1:
        batches += list(trainer.loader(epoch))
        epoch += 1
    trainer.train_step(batches[0])
    _sync(trainer.device)
    t0 = time.perf_counter()
    for batch in batches[1 : steps + 1]:
        trainer.train_step(batch)
    _sync(trainer.device)
    return steps / (time.perf_counter() - t0)


def _training(encoder, feats, frames: list[np.ndarray], args) -> tuple[float, float]:
    """Steps/s of the meanP head on cached features, and end to end through ``encoder``."""
    n = len(feats.video_ids)
    cfg = TrainConfig(
        epochs=1, batch_size=min(args.train_batch, n), progress=False, device=args.device
    )
    padded, mask = feats.padded()  # (N, T, d), (N, T)
    text = torch.nn.functional.normalize(torch.randn(n, padded.shape[-1]), dim=-1)
    head = build_model("meanP", dim=encoder.embed_dim, num_frames=padded.shape[1])
    cached = Trainer(head, CachedPairs(padded, text, np.arange(n), mask=mask), cfg)
    cached_rate = _steps_per_s(cached, args.steps)

    captions = [f"video {i}: a moving shape" for i in range(n)]
    e2e_cfg = cfg.model_copy(update={"mode": "end_to_end", "batch_size": min(args.e2e_batch, n)})
    head = build_model("meanP", dim=encoder.embed_dim, num_frames=padded.shape[1])
    e2e = Trainer(head, EndToEndPairs(frames, captions, np.arange(n)), e2e_cfg, encoder=encoder)
    return cached_rate, _steps_per_s(e2e, args.steps)


def bench_model(name: str, ds, args, device: torch.device) -> dict:
    encoder = load_clip(name, pretrained=None, device=str(device))
    _extraction(_dataset(args.videos, 2), encoder, args, device)  # warm-up: kernels, workers
    seconds, feats = _extraction(ds, encoder, args, device)
    frames = [
        read_frames(item.path, idx, size=SAMPLING.size, resize=SAMPLING.resize)
        for item, idx in zip(ds.videos, feats.indices, strict=True)
    ]  # per video (T, H, W, 3) uint8
    with torch.no_grad():
        pixels = torch.cat([encoder.preprocess_frames(f) for f in frames]).to(device)
    n_frames = int(pixels.shape[0])
    encode_s = statistics.median(
        _encode_only(encoder, pixels, args.batch, device) for _ in range(3)
    )
    del pixels
    cached_rate, e2e_rate = _training(encoder, feats, frames, args)
    row = {
        "model": name,
        "precision": encoder.precision,
        "videos": len(ds.videos),
        "frames": n_frames,
        "extract": n_frames / seconds,
        "encode": n_frames / encode_s,
        "cached_steps": cached_rate,
        "e2e_steps": e2e_rate,
    }
    print(row, flush=True)
    return row


def markdown(rows: list[dict], device: torch.device, args) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"## GPU throughput (`benchmarks/bench_cuda.py`) on {name}",
        "",
        f"Device: {name} ({device}); {os.cpu_count()} CPU cores, {args.workers} decoding workers; "
        f"torch {torch.__version__}. Sampling {SAMPLING.key()}; extraction batch {args.batch}; "
        f"training: meanP head, batch {args.train_batch} (cached) / {args.e2e_batch} (end to "
        "end), random weights. *encode-only*: the same frames preprocessed beforehand and already "
        "on the device. ratio = extraction / encode-only (goal on a GPU: >= 0.5).",
        "",
        "| model | precision | videos | frames | extraction frames/s | encode-only frames/s "
        "| ratio | train steps/s (cached) | train steps/s (end to end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['videos']} | {r['frames']} "
            f"| {r['extract']:.0f} | {r['encode']:.0f} | {r['extract'] / r['encode']:.2f} "
            f"| {r['cached_steps']:.1f} | {r['e2e_steps']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, required=True, help="folder of .mp4 (or a world)")
    ap.add_argument("--out", type=Path, required=True, help="markdown file to write")
    ap.add_argument("--n", type=int, default=400, help="videos to extract")
    ap.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    ap.add_argument("--batch", type=int, default=256, help="frames per encoder call")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--e2e-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    ds = _dataset(args.videos, args.n)
    rows = [bench_model(name, ds, args, device) for name in args.models]
    md = markdown(rows, device, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
