"""Frame-feature extraction throughput: the full pipeline against encoding frames already in memory.

Why: ``vrlib.features.extract_frame_features`` decodes in DataLoader workers so that decoding
overlaps encoding. The ratio (pipeline frames/s) / (in-memory frames/s) says how much of the
encoder's speed the pipeline keeps: near 1 means decoding is hidden behind encoding; far below 1
means decoding (or the cache writes) is the bottleneck. Both are measured in the same run, on
the same frames, with the same batch size, so the ratio does not depend on the machine's speed
as much as the raw numbers do.

* pipeline: ``extract_frame_features`` into a fresh temporary cache (no hit): probe, sample,
  decode, preprocess, encode, write shards.
* in memory: the same frames decoded beforehand (not timed), then only
  ``preprocess_frames`` + ``encode_preprocessed`` in batches of the same size.
* decode: the same frames decoded in this process (``read_frames``), the work the pipeline's
  workers add. ``bound = 1 / (1 + decode / in memory)`` is the ratio the pipeline can reach when
  decoding and encoding share the cores (an encoder that uses every core leaves decoding no
  free core); for ViT-B-32 it is about 1, for vrlib-tiny decoding weighs.

The machines this runs on are shared: pipeline, in-memory and decode runs are interleaved for
``--rounds`` rounds and the table shows the median of the per-round ratios, so load that comes
and goes hits both sides of a ratio alike.

Run: ``.venv/bin/python benchmarks/bench_extract.py`` (part of ``make bench``). Uses the default
world if it was generated (``vrlib.paths.world_dir("default", 0)``), else generates the smoke
world in a temporary folder; the output says which. Random weights (``pretrained=None``): speed
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.data.datasets import RetrievalDataset, load_dataset  # noqa: E402
from vrlib.data.sampling import SamplingConfig  # noqa: E402
from vrlib.data.video import read_frames  # noqa: E402
from vrlib.encoders import load_clip  # noqa: E402
from vrlib.features import extract_frame_features  # noqa: E402
from vrlib.paths import world_dir  # noqa: E402

BATCH_SIZE = 64
# model -> (videos, decoding worker counts to try). ViT-B-32's image tower costs ~70x vrlib-tiny
# per frame on CPU, so it gets fewer videos to keep the whole script within ~3 minutes on 2
# cores. Both worker counts for both: 0 (decode in the main process) is the pipeline's default,
# 1 overlaps decoding with encoding at the cost of a process start and frame transfers.
MODELS = {"vrlib-tiny": (100, (0, 1)), "ViT-B-32": (8, (0, 1))}


def _world(tmp: Path) -> tuple[Path, str]:
    """The default world when it exists, else a freshly generated smoke world."""
    default = world_dir("default", 0)
    if (default / "world.json").is_file():
        return default, "default world ($VRLIB_HOME/worlds/default-seed0)"
    from vrlib.data.synthetic import generate_world

    root = generate_world(tmp / "smoke-seed0", preset="smoke", seed=0)
    return root, "smoke world generated to a temporary folder (no default world found)"


def _all_videos(root: Path, limit: int) -> RetrievalDataset:
    """The first ``limit`` videos over the train, val and test splits."""
    videos = []
    for split in ("train", "val", "test"):
        videos += load_dataset("synthetic", root, split).videos
    return RetrievalDataset("synthetic", "all", root, videos[:limit], captions=[])


def _pipeline(ds, encoder, sampling, workers: int, tmp: Path) -> tuple[float, object]:
    cache = Path(tempfile.mkdtemp(dir=tmp, prefix="cache-"))  # fresh: no cache hit
    t0 = time.perf_counter()
    feats = extract_frame_features(
        ds, encoder, sampling, cache, batch_size=BATCH_SIZE, num_workers=workers, progress=False
    )
    return time.perf_counter() - t0, feats


def _decoded(ds, feats, sampling) -> tuple[torch.Tensor, float]:
    """The pipeline's frames decoded in this process, and the seconds that took."""
    t0 = time.perf_counter()
    frames = [
        torch.from_numpy(read_frames(item.path, idx, size=sampling.size, resize=sampling.resize))
        for item, idx in zip(ds.videos, feats.indices, strict=True)
    ]
    return torch.cat(frames), time.perf_counter() - t0  # (F, H, W, 3) uint8


def _in_memory(encoder, frames: torch.Tensor) -> float:
    """Seconds to preprocess + encode frames already decoded."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in frames.split(BATCH_SIZE):
            encoder.encode_preprocessed(encoder.preprocess_frames(batch))
    return time.perf_counter() - t0


def _warm_up(encoder, ds, sampling) -> None:
    item = ds.videos[0]
    frames = read_frames(item.path, [0, 1], size=sampling.size, resize=sampling.resize)
    with torch.no_grad():
        encoder.encode_preprocessed(encoder.preprocess_frames(frames))


def _measure(model, limit, workers_list, root, sampling, tmp, rounds) -> list[tuple]:
    """Rows ``(model, videos, frames, workers, pipeline f/s, memory f/s, ratio, bound)``."""
    ds = _all_videos(root, limit)
    encoder = load_clip(model, pretrained=None, device="cpu")
    _warm_up(encoder, ds, sampling)
    ratios: dict[int, list[tuple[float, float, float, float]]] = {w: [] for w in workers_list}
    frames_n = 0
    for _ in range(rounds):
        for workers in workers_list:
            seconds, feats = _pipeline(ds, encoder, sampling, workers, tmp)
            frames, decode_s = _decoded(ds, feats, sampling)
            memory_s = _in_memory(encoder, frames)
            frames_n = int(frames.shape[0])
            ratios[workers].append((frames_n / seconds, frames_n / memory_s, memory_s, decode_s))
    rows = []
    for workers, runs in ratios.items():
        ratio = statistics.median(p / m for p, m, _, _ in runs)
        bound = statistics.median(1 / (1 + d / e) for _, _, e, d in runs)
        pipe = statistics.median(p for p, _, _, _ in runs)
        mem = statistics.median(m for _, m, _, _ in runs)
        rows.append((model, len(ds.videos), frames_n, workers, pipe, mem, ratio, bound))
        print(
            f"{model}: {len(ds.videos)} videos, {frames_n} frames, workers={workers}: pipeline "
            f"{pipe:.1f} frames/s, in memory {mem:.1f} frames/s, ratio {ratio:.2f} "
            f"(rounds: {', '.join(f'{p / m:.2f}' for p, m, _, _ in runs)}), bound {bound:.2f}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only, leave benchmarks.md")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (median)")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--rows-json", action="store_true", help="print the rows as JSON only")
    ap.add_argument(
        "--no-passive", action="store_true", help="skip the OMP_WAIT_POLICY=PASSIVE rerun"
    )
    args = ap.parse_args(argv)
    sampling = SamplingConfig(strategy="uniform", n=12)
    load = os.getloadavg()[0]  # the machines this runs on are shared: say how busy it was
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        root, world_note = _world(tmp)
        for model in args.models:
            limit, worker_counts = MODELS[model]
            rows += [
                (*r, policy)
                for r in _measure(model, limit, worker_counts, root, sampling, tmp, args.rounds)
            ]
    if args.rows_json:
        print(json.dumps(rows))
        return 0
    if not args.no_passive and policy != "PASSIVE":
        rows += _passive_rows(args.rounds)
    md = _markdown(rows, world_note, sampling, load, args.rounds)
    print(md)
    if not args.no_write:
        print(f"wrote {write_section('extract', md)}")
    return 0


def _passive_rows(rounds: int) -> list[tuple]:
    """vrlib-tiny again in a child process with ``OMP_WAIT_POLICY=PASSIVE``.

    Why: torch's OpenMP threads spin for a while after each parallel region, on the cores the
    decoder needs next; PASSIVE makes them sleep. libgomp reads the variable once, when torch is
    imported, hence a fresh process.
    """
    cmd = [
        sys.executable,
        __file__,
        "--rows-json",
        "--models",
        "vrlib-tiny",
        "--rounds",
        str(rounds),
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return [tuple(r) for r in json.loads(out.strip().splitlines()[-1])]


def _markdown(rows, world_note: str, sampling, load: float, rounds: int) -> str:
    lines = [
        "## Frame-feature extraction (`benchmarks/bench_extract.py`)",
        "",
        f"Data: {world_note}. Sampling: {sampling.key()}; batch {BATCH_SIZE} frames; "
        "random weights. Videos are capped per model "
        f"({', '.join(f'{m}: first {n}' for m, (n, _) in MODELS.items())} over train+val+test) "
        "to keep the run short on CPU.",
        "",
        "*pipeline*: `extract_frame_features` into a fresh cache (decode + preprocess + encode + "
        "shard writes; workers = decoding processes, 0 = decode in the main process). "
        "*in memory*: the same frames decoded beforehand, preprocess + encode only. "
        "ratio = pipeline / in memory (1.0 = decoding fully hidden). *bound* = 1 / (1 + decode / "
        "in memory): what decoding and encoding sharing the cores allow. Medians over "
        f"{rounds} interleaved rounds.",
        "",
        "*OMP_WAIT_POLICY*: torch's OpenMP threads spin after each parallel region (unset: "
        "libgomp's default) or sleep (PASSIVE, measured in a child process); spinning threads "
        "hold the cores the decoder needs between encoder calls.",
        "",
        "| model | videos | frames | workers | OMP_WAIT_POLICY | pipeline frames/s "
        "| in-memory frames/s | ratio | bound |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for model, videos, frames, workers, pipe, mem, ratio, bound, policy in rows:
        lines.append(
            f"| {model} | {videos} | {frames} | {workers} | {policy} | {pipe:.1f} | {mem:.1f} "
            f"| {ratio:.2f} | {bound:.2f} |"
        )
    lines += [
        "",
        f"Measured on: {machine_line()}; {os.cpu_count()} CPU cores visible, 1-minute load "
        f"average {load:.1f} at the start (other jobs share the machine, so absolute frames/s "
        "vary; the ratios are the comparison).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
