"""Video decoders on the same files: decord, PyAV and (if installed) torchcodec.

Why: issue 10 asks whether ``torchcodec`` should become a backend. Each backend decodes the same
``uniform n=12`` frame indices of the same videos; the script reports frames/s (rounds
interleaved, median over rounds, so machine load hits every backend alike) and whether each
backend's frames equal decord's bit for bit (max absolute difference otherwise).

torchcodec needs FFmpeg's shared libraries from the system (``libavutil.so.57``..``61``); the
pip wheel does not bring them. Run: ``.venv/bin/python benchmarks/bench_decoders.py [--videos N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.data.sampling import SamplingConfig  # noqa: E402
from vrlib.data.video import BACKENDS, probe  # noqa: E402
from vrlib.paths import world_dir  # noqa: E402


def _torchcodec_reader():
    """A function ``(path, indices) -> (T, H, W, 3) uint8`` using torchcodec, or None."""
    try:
        from torchcodec.decoders import VideoDecoder

        def read(path: str, indices: np.ndarray) -> np.ndarray:
            dec = VideoDecoder(path, device="cpu", seek_mode="exact", dimension_order="NHWC")
            return dec.get_frames_at(indices.tolist()).data.numpy()

        return read
    except Exception as e:  # ImportError, or RuntimeError when FFmpeg's libraries are missing
        print(f"torchcodec unavailable: {type(e).__name__}: {str(e).splitlines()[0]}")
        return None


def _vrlib_reader(name: str):
    def read(path: str, indices: np.ndarray) -> np.ndarray:
        with BACKENDS.get(name)(path) as reader:
            return reader.read(indices)

    return read


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    files = sorted((world_dir("default", 0) / "videos").glob("*.mp4"))[: args.videos]
    if not files:
        raise SystemExit("no default world: run `python -m vrlib synth` first")
    sampling = SamplingConfig(strategy="uniform", n=12)
    jobs = []
    for f in files:
        info = probe(f)
        jobs.append((str(f), np.asarray(sampling.indices(info.num_frames, info.fps), np.int64)))
    readers = {"decord": _vrlib_reader("decord"), "pyav": _vrlib_reader("pyav")}
    tc = _torchcodec_reader()
    if tc is not None:
        readers["torchcodec"] = tc
    reference = {path: readers["decord"](path, idx) for path, idx in jobs}
    times: dict[str, list[float]] = {name: [] for name in readers}
    diffs: dict[str, int] = {name: 0 for name in readers}
    for _ in range(args.rounds):
        for name, read in readers.items():
            t0 = time.perf_counter()
            for path, idx in jobs:
                frames = read(path, idx)
                diffs[name] = max(
                    diffs[name], int(np.abs(frames.astype(int) - reference[path]).max())
                )
            times[name].append(time.perf_counter() - t0)
    n = sum(len(idx) for _, idx in jobs)
    fps = {name: n / statistics.median(times[name]) for name in readers}
    rows = "\n".join(
        f"| {name} | {fps[name]:.0f} | {fps[name] / fps['decord']:.2f} | {diffs[name]} |"
        for name in readers
    )
    absent = (
        ""
        if tc is not None
        else "\n\ntorchcodec could not be loaded here (see the message above the table)."
    )
    markdown = f"""## Decoders on the same files (`benchmarks/bench_decoders.py`)

Command: `python benchmarks/bench_decoders.py --videos {args.videos} --rounds {args.rounds}` — {machine_line()}.
{len(jobs)} videos of the default world, {n} frames (uniform n=12 per video), {args.rounds} interleaved rounds,
median time per backend; "max abs diff" compares each backend's uint8 frames with decord's.

| backend | frames/s | vs decord | max abs diff vs decord |
|---|---:|---:|---:|
{rows}{absent}

Adoption rule (issue 10): torchcodec becomes the default only if it installs with pip alone and
wins. Its wheel does not bring FFmpeg: it loads the system's `libavutil.so.57`-`61`, so a pip-only
install (the CI image without those libraries) cannot decode with it; decord (from `decord2`) stays
the default and PyAV the fallback.
"""
    print(markdown)
    write_section("decoders", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
