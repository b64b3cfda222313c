"""Cost of one training step of each text side on cached inputs, against fine-tuning the whole text tower.

Why: ``last_blocks`` claims that a step costs only the trainable blocks because it starts from
cached hidden states, and the adapter that it costs a small transformer. This measures forward +
backward + AdamW step of each ``vrlib.models.text_side`` on a batch of captions, and of the full
text tower (``model.encode_text`` with gradients, what end-to-end text training runs), as ratios
to the full tower measured in the same run. Random weights (``pretrained=None``): speed does not
depend on the values. Every side runs over the full context length (``text_inputs`` without
``trim``), as the tower does, so the ratios compare the same positions.

Run: ``.venv/bin/python benchmarks/bench_text_side.py [--model ViT-B-32]`` from the repo root
(part of ``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.encoders import (
    load_clip,  # noqa: E402
    text_inputs,  # noqa: E402
)
from vrlib.models.text_side import build_text_side  # noqa: E402

WORDS = "a red small big circle square moves left right up down then grows shrinks appears".split()


def _captions(n: int) -> list[str]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, 16, (n,), generator=g).tolist()
    return [" ".join(WORDS[i % len(WORDS)] for i in range(k, 2 * k)) for k in lengths]


def _median_step(step, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _side_step(side, inputs: dict[str, torch.Tensor], target: torch.Tensor):
    params = list(side.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5) if params else None

    def step() -> None:
        loss = (side(inputs)["text"] @ target.T).logsumexp(-1).mean()
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()

    return step


def _full_tower_step(encoder, ids: torch.Tensor, target: torch.Tensor):
    model = encoder.model
    params = [p for n, p in model.named_parameters() if not n.startswith("visual")]
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step() -> None:
        text = F.normalize(model.encode_text(ids), dim=-1)
        loss = (text @ target.T).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    encoder = load_clip(args.model, device="cpu", precision="fp32")
    encoder.model.train()
    captions = _captions(args.batch)
    depth = len(encoder.model.transformer.resblocks)
    target = F.normalize(torch.randn(args.batch, encoder.embed_dim), dim=-1)
    ids = encoder.tokenizer(captions)
    cached = text_inputs(encoder, captions)
    full = _median_step(_full_tower_step(encoder, ids, target), args.warmup, args.steps)
    rows = [("full text tower (end to end)", full)]
    sides = [("frozen", {}), ("adapter", {})]
    sides += [("last_blocks", {"blocks": n}) for n in args.blocks if n <= depth]
    for name, cfg in sides:
        hidden = depth - cfg["blocks"] if "blocks" in cfg else None
        inputs = cached if hidden is None else text_inputs(encoder, captions, hidden_block=hidden)
        side = build_text_side(name, encoder=encoder, dim=encoder.embed_dim, **cfg)
        label = f"{name} ({cfg['blocks']} of {depth} blocks)" if cfg else name
        rows.append(
            (label, _median_step(_side_step(side, inputs, target), args.warmup, args.steps))
        )
    lines = [
        "## Text side: one training step on cached inputs",
        "",
        f"`python benchmarks/bench_text_side.py --model {args.model} --batch {args.batch}` "
        f"({machine_line()}); {ids.shape[1]} tokens per caption, median of {args.steps} steps "
        "(forward, backward, AdamW).",
        "",
        "| text side | ms / step | vs full tower |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {t * 1e3:.1f} | {t / full:.3f} |" for label, t in rows]
    print("\n".join(lines))
    write_section("text_side", "\n".join(lines))


if __name__ == "__main__":
    main()
