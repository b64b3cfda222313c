"""A long video: do the frames read equal the frames asked for, and what do they cost in memory?

Why: issue 21 saw decord return 5 of 32 sampled frames 30-100 frames early from a 10-minute 25 fps
H.264 file, with a peak of 2.06 GB. This script encodes such a file itself (15,000 frames, noise
so that decoding is slower than demuxing, as in real footage; each frame's number drawn in a 4x4
grid of black or white blocks), samples 32 evenly spread frames, and for each way of reading
reports how many frames carry another number, the peak memory above the baseline (resident set,
in a fresh process, after the libraries are imported) and the time.

Ways of reading: decord's own ``get_batch`` (what vrlib did before), vrlib with decord forced
(raises when decord's seek gives up), vrlib's default (PyAV past 10,000 frames) and vrlib with
PyAV. Run: ``.venv/bin/python benchmarks/bench_long_video.py [--frames N --size S]``; encoding
the file takes about 2 minutes per 10,000 frames at 256x256 on one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("decord get_batch", "vrlib, decord forced", "vrlib default", "vrlib, pyav forced")


def _number_frame(n: int, size: int, noise: np.ndarray) -> np.ndarray:
    bits = ((n >> np.arange(16)) & 1).reshape(4, 4).astype(np.uint8) * 255
    block = size // 4
    img = np.repeat(np.repeat(bits, block, 0), block, 1)[..., None].repeat(3, 2)  # (S, S, 3)
    return (img.astype(np.int16) * 3 // 4 + noise // 4).astype(np.uint8)


def _read_number(frame: np.ndarray) -> int:
    block = frame.shape[0] // 4
    inner = frame[:, :, 0].reshape(4, block, 4, block)[:, 2:-2, :, 2:-2]
    return int(((inner.mean(axis=(1, 3)) > 128).ravel() << np.arange(16)).sum())


def encode(path: Path, frames: int, size: int) -> None:
    import av

    noise = np.random.default_rng(0).integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "veryfast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for n in range(frames):
            image = _number_frame(n, size, noise[n % 64])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))


def worker(mode: str, path: str, frames: int) -> dict:
    """One way of reading, in this (fresh) process: wrong frames, peak RSS above baseline, time."""
    import resource
    import time

    import av  # noqa: F401  (imported before the baseline: libraries are not what is measured)
    import decord

    from vrlib.data.video import VideoDecodeError, read_frames

    wanted = np.linspace(0, frames - 1, 32).round().astype(int)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        if mode == "decord get_batch":
            got = decord.VideoReader(path, num_threads=1).get_batch(wanted.tolist()).asnumpy()
        else:
            backend = {"vrlib, decord forced": "decord", "vrlib, pyav forced": "pyav"}.get(mode)
            got = read_frames(path, wanted, backend=backend)
        wrong = int((np.array([_read_number(f) for f in got]) != wanted).sum())
    except VideoDecodeError as e:
        wrong = f"raised: {e.reason[:60]}..."
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wrong": wrong, "peak_mb": (peak - base) / 1024, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the report")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.frames)))
        return 0
    from benchmarks._common import machine_line, write_section

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "numbers.mp4"
        encode(path, args.frames, args.size)
        for mode in MODES:
            cmd = [
                sys.executable,
                __file__,
                "--frames",
                str(args.frames),
                "--worker",
                mode,
                str(path),
            ]
            run = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            rows.append(f"| {mode} | {r['wrong']} | {r['peak_mb']:.0f} | {r['seconds']:.1f} |")
            print(rows[-1], flush=True)
        size_mb = path.stat().st_size / 2**20
    text = "\n".join(
        [
            "## Long video: the frames asked for, and memory (`bench_long_video.py`)",
            "",
            f"{args.frames} frames of {args.size}x{args.size} H.264 at 25 fps ({size_mb:.0f} MB), 32 "
            "evenly spread frames, each frame's number read back from its pixels. Peak memory is "
            "the resident set above a fresh process's baseline with the libraries imported.",
            "",
            "| reader | frames with another number (of 32) | peak MB | s |",
            "|---|---|---|---|",
            *rows,
            "",
            machine_line(),
        ]
    )
    print(text) if args.no_write else write_section("long_video", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
