"""Feature extraction under concurrent writers and on long videos (issue 10, section 2).

* Two extraction processes write into one cache at the same time (two splits, two notebooks):
  neither may lose the other's shards.
* A long video sampled densely (``fps`` strategy, no frame cap) is decoded and preprocessed in
  bounded chunks: the peak memory of the extracting process does not grow with the video.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _launch import run_ranks

from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.features import extract_frame_features
from vrlib.features.decode import CHUNK_FRAMES

SAMPLING = SamplingConfig(strategy="uniform", n=4)


def _write_mp4(path: Path, num_frames: int, width: int, height: int, fps: int = 10) -> None:
    """An H.264 clip whose frames all differ (a moving bar over a changing background)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            img = np.full((height, width, 3), (t % 256, (3 * t) % 256, 90), np.uint8)
            x = (4 * t) % (width - 8)
            img[10:22, x : x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _dataset(paths: list[Path]) -> RetrievalDataset:
    items = [VideoItem(video_id=p.stem, path=p) for p in paths]
    return RetrievalDataset("test", "all", paths[0].parent, items, captions=[])


def _wait_for_each_other(folder: Path, me: str, count: int) -> None:
    """A file barrier: return once ``count`` processes have arrived (or after 60 s)."""
    (folder / f"arrived-{me}").touch()
    deadline = time.time() + 60
    while len(list(folder.glob("arrived-*"))) < count and time.time() < deadline:
        time.sleep(0.02)


def extract_one_split(out_dir: str) -> None:
    """Run by each process: extract its half of the videos into the shared cache.

    Both processes are rank 0 of 1 (two independent runs, not a sharded one). The first encoder
    call waits until the other process got there too, so both opened the cache before either
    wrote a shard: the interleaving that made shard names collide.
    """
    from vrlib.encoders import load_clip

    torch.set_num_threads(1)
    out, me = Path(out_dir), os.environ["RANK"]
    paths = sorted((out / "videos").glob("*.mp4"))
    half = paths[: len(paths) // 2] if me == "0" else paths[len(paths) // 2 :]
    torch.manual_seed(0)
    enc = load_clip("vrlib-tiny", pretrained=None, device="cpu")
    encode = enc.encode_preprocessed

    def encode_after_barrier(pixels: torch.Tensor) -> torch.Tensor:
        _wait_for_each_other(out, me, 2)
        return encode(pixels)

    enc.encode_preprocessed = encode_after_barrier
    extract_frame_features(
        _dataset(half), enc, SAMPLING, out / "cache", batch_size=4, shard_size=2,
        progress=False, rank=0, world_size=1,
    )  # fmt: skip


@pytest.mark.slow
def test_two_extractions_into_one_cache_keep_both(tmp_path):
    (tmp_path / "videos").mkdir()
    for i in range(8):
        _write_mp4(tmp_path / "videos" / f"v{i}.mp4", 6 + i, 64, 64)
    run_ranks("test_features_concurrency", "extract_one_split", tmp_path, world_size=2)

    from vrlib.encoders import load_clip

    torch.manual_seed(0)
    enc = load_clip("vrlib-tiny", pretrained=None, device="cpu")
    ds = _dataset(sorted((tmp_path / "videos").glob("*.mp4")))
    merged = extract_frame_features(ds, enc, SAMPLING, tmp_path / "cache", progress=False)
    assert merged.stats["cached"] == 8 and merged.stats["encoded"] == 0, merged.stats
    shards = sorted(p.name for p in tmp_path.glob("cache/*/shard_*.pt"))
    assert len(shards) == 8 // 2  # 4 videos per process, 2 per shard, no name reused


MEMORY_SCRIPT = r"""
import resource, sys, torch
from pathlib import Path
from vrlib.data.datasets import RetrievalDataset, VideoItem
from vrlib.data.sampling import SamplingConfig
from vrlib.encoders import load_clip
from vrlib.features import extract_frame_features

torch.set_num_threads(1)
path = Path(sys.argv[1])
ds = RetrievalDataset("test", "all", path.parent, [VideoItem(path.stem, path)], [])
enc = load_clip("vrlib-tiny", pretrained=None, device="cpu")

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def run(sampling, workers):
    f = extract_frame_features(ds, enc, sampling, None, batch_size=32, num_workers=workers,
                               progress=False)
    return int(f.features[0].shape[0])

few = run(SamplingConfig(strategy="uniform", n=8), 0)  # warm-up: one chunk, all code paths
before = peak_kib()
dense = run(SamplingConfig(strategy="fps", target_fps=25.0), 0)
print(few, dense, before, peak_kib())
"""


@pytest.mark.slow
def test_long_video_extraction_memory_is_bounded(tmp_path):
    """1,500 frames of 320x240 at fps sampling: the peak RSS grows by a few chunks, not the video.

    Holding the whole video at once costs at least its uint8 frames (1500 x 230 KB = 345 MB) plus
    their float32 preprocessing input (4x that); the bound allows ten float32 chunks.
    """
    width, height, frames = 320, 240, 1500
    video = tmp_path / "long.mp4"
    _write_mp4(video, frames, width, height, fps=25)
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, str(script), str(video)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    few, dense, before_kib, after_kib = map(int, out.stdout.split()[-4:])
    assert (few, dense) == (8, frames)
    chunk_float32 = CHUNK_FRAMES * height * width * 3 * 4
    whole_video_uint8 = frames * height * width * 3
    allowed = 10 * chunk_float32
    assert allowed < whole_video_uint8 * 5  # the bound would catch holding the whole video
    grown = (after_kib - before_kib) * 1024
    assert grown < allowed, (
        f"peak RSS grew by {grown / 2**20:.0f} MiB (allowed {allowed / 2**20:.0f})"
    )
