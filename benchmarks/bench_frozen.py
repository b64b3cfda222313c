"""What a training step of the space-time model (study 04) costs, by number of frames.

Why: the frame curriculum's promise is compute: a 1- or 4-frame step is cheaper than an 8-frame
step, so a curriculum reaches 8 frames for less. This measures, on ``frozen-tiny`` (random
weights, random 64 px clips, captions through the text tower), one optimiser step's counted FLOPs
(``torch.utils.flop_counter``) and its wall and CPU time, for video batches of 1, 4 and 8 frames
and an image batch, and reports each as a ratio to the 8-frame step, measured in one run. The
ratio of times is below the ratio of FLOPs where fixed costs (the text tower's dense embedding
gradient, AdamW over every weight) dominate small steps. Medians over the timed steps, after one
untimed warm-up step.

Run: ``.venv/bin/python benchmarks/bench_frozen.py`` from the repo root (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.losses import ContrastiveLoss  # noqa: E402
from vrlib.models.frozen import build_frozen, count_flops  # noqa: E402

CAPTION = "a small red circle moves to the left, then a blue square grows"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(kind: str, frames: int, batch: int, steps: int, model, tokenizer) -> dict:
    """Counted GFLOPs and median wall / CPU seconds of one optimiser step on one batch shape."""
    loss_fn = ContrastiveLoss(0.05, learnable=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, frames, 3, 64, 64, generator=gen)
    ids = tokenizer([CAPTION] * batch)

    def forward_backward() -> None:
        loss_fn(model.encode_text(ids) @ model.encode_video(pixels).T).backward()

    flops = count_flops(forward_backward)
    walls, cpus = [], []
    for i in range(steps + 1):
        w0, c0 = time.perf_counter(), _cpu_s()
        opt.zero_grad(set_to_none=True)
        forward_backward()
        opt.step()
        if i:  # the first step warms up
            walls.append(time.perf_counter() - w0)
            cpus.append(_cpu_s() - c0)
    return {"batch": f"{kind}/{frames}/{batch}", "gflops": flops / 1e9,
            "wall": statistics.median(walls), "cpu": statistics.median(cpus)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--video-batch", type=int, default=8)
    ap.add_argument("--image-batch", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, encoder = build_frozen("frozen-tiny")
    shapes = [("video", 8, args.video_batch), ("video", 4, args.video_batch),
              ("video", 1, args.video_batch), ("image", 1, args.image_batch)]  # fmt: skip
    rows = [measure(k, f, b, args.steps, model, encoder.tokenizer) for k, f, b in shapes]
    ref = rows[0]
    lines = [
        "## Space-time model (study 04): cost of a training step by frames",
        "",
        f"`benchmarks/bench_frozen.py --steps {args.steps}` on {machine_line()}. FLOPs counted by "
        "`torch.utils.flop_counter` (forward + backward, text tower included); time = one "
        "optimiser step (median); ratios are to the 8-frame video step of the same run.",
        "",
        "| batch (kind/frames/size) | GFLOPs | FLOPs ratio | wall ratio | CPU-time ratio |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['gflops']:.2f} | {r['gflops'] / ref['gflops']:.2f} | "
            f"{r['wall'] / ref['wall']:.2f} | {r['cpu'] / ref['cpu']:.2f} |"
        )
    text = "\n".join(lines)
    print(text)
    write_section("frozen", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
