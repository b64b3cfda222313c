"""``python -m vrlib index`` shared by 2 processes (torchrun's and Slurm's variables), ``--merge``, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.features import process_rank

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = 5


def _write_mp4(path: Path, num_frames: int, shade: int) -> None:
    """A 10 fps H.264 clip, 48 x 48: a bright square moving over a background of colour ``shade``."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width = stream.height = 48
        stream.pix_fmt = "yuv420p"
        for t in range(num_frames):
            img = np.full((48, 48, 3), (shade, 255 - shade, (shade * 3) % 256), np.uint8)
            img[10:22, (4 * t) % 40 : (4 * t) % 40 + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Five tiny videos and a vrlib-tiny checkpoint (random weights, seed 0)."""
    from vrlib.index import open_encoder

    root = tmp_path_factory.mktemp("videos")
    for i in range(VIDEOS):
        _write_mp4(root / f"clip{i}.mp4", 12 + 4 * i, shade=40 * i)
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(open_encoder("vrlib-tiny", None).model.state_dict(), ckpt)
    return root, ckpt


def _index_cmd(root: Path, ckpt: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "vrlib", "index", str(root), "--model", "vrlib-tiny"]
    return [*cmd, "--pretrained", str(ckpt), "--cache-dir", str(cache), "--out", str(out), *extra]


def _env(**ranks: str) -> dict[str, str]:
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **ranks}


def test_two_ranks_encode_half_each_and_rank0_writes_the_whole_index(setup, tmp_path):
    root, ckpt = setup
    cmd = _index_cmd(root, ckpt, tmp_path / "cache", tmp_path / "ix")
    procs = [
        subprocess.Popen(cmd, env=_env(RANK=str(r), WORLD_SIZE="2"), cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for r in (0, 1)
    ]  # fmt: skip
    (out0, err0), (out1, err1) = (p.communicate(timeout=300) for p in procs)
    assert [p.returncode for p in procs] == [0, 0], err0 + err1
    assert "rank 0 of 2: 3 videos (3 encoded, 0 cached, 0 skipped)" in out0
    assert "rank 1 of 2: 2 videos (2 encoded, 0 cached, 0 skipped)" in out1
    assert "indexed" not in out1  # only rank 0 writes
    # rank 0 found every video in the cache: the merge encoded nothing
    assert (
        f"{VIDEOS} videos indexed ({VIDEOS} added, 0 skipped, 0 encoded, {VIDEOS} cached)" in out0
    )

    from vrlib.index import VideoIndex, open_encoder

    sharded = VideoIndex.load(tmp_path / "ix")
    encoder = open_encoder("vrlib-tiny", str(ckpt))
    alone = VideoIndex.build(root, encoder, cache_dir=None, progress=False)
    assert sharded.video_ids == alone.video_ids == [f"clip{i}.mp4" for i in range(VIDEOS)]
    np.testing.assert_allclose(sharded.embeddings, alone.embeddings, atol=1e-3)  # float16 file
    np.testing.assert_array_equal(sharded.frames.offsets, alone.frames.offsets)


def _in_process(monkeypatch, capsys, args: list[str], **ranks: str) -> tuple[int, str, str]:
    """``python -m vrlib ARGS`` in this process (no interpreter start) with these rank variables."""
    from vrlib.cli import main

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ranks.items():
        monkeypatch.setenv(name, value)
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


def test_slurm_ranks_merge_later_and_a_rerun_rank_resumes(setup, tmp_path, monkeypatch, capsys):
    root, ckpt = setup
    cache, out = tmp_path / "cache", tmp_path / "ix"
    args = _index_cmd(root, ckpt, cache, out)[3:]
    slurm1 = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    status, stdout, _ = _in_process(monkeypatch, capsys, args, **slurm1)
    assert status == 0 and "rank 1 of 2: 2 videos (2 encoded" in stdout
    status, _, err = _in_process(monkeypatch, capsys, [*args, "--merge", "2"])
    assert status == 2 and "ranks [0] of 2 have not finished" in err
    assert not (out / "manifest.json").exists()

    # rank 1 killed after its shard was written but before its done marker: rerun resumes
    (marker,) = cache.glob("*/done_r1of2.json")
    marker.unlink()
    status, stdout, _ = _in_process(monkeypatch, capsys, args, **slurm1)
    assert "rank 1 of 2: 2 videos (0 encoded, 2 cached, 0 skipped)" in stdout
    assert json.loads(marker.read_text())["share"]

    from vrlib.index import VideoIndex, open_encoder
    from vrlib.index.shards import encode_share, unfinished_shares

    empty = VideoIndex.build(root, open_encoder("vrlib-tiny", str(ckpt)), encode=False)
    assert unfinished_shares(empty, 2, cache) == [0]
    assert encode_share(empty, 0, 2, cache_dir=cache, progress=False)["encoded"] == 3
    assert unfinished_shares(empty, 2, cache) == []
    status, stdout, err = _in_process(monkeypatch, capsys, [*args, "--merge", "2"])
    assert status == 0, err
    assert (
        f"{VIDEOS} videos indexed ({VIDEOS} added, 0 skipped, 0 encoded, {VIDEOS} cached)" in stdout
    )
    status, _, err = _in_process(monkeypatch, capsys, [*args, "--merge", "0"])
    assert status == 2 and "--merge takes the number of ranks" in err


def test_rank0_stops_waiting_with_the_missing_ranks(setup, tmp_path, monkeypatch, capsys):
    root, ckpt = setup
    args = _index_cmd(root, ckpt, tmp_path / "cache", tmp_path / "ix", "--wait", "0")[3:]
    status, stdout, err = _in_process(monkeypatch, capsys, args, RANK="0", WORLD_SIZE="3")
    assert status == 2 and "ranks [1, 2] of 3 have not finished" in err
    assert "rank 0 of 3: 2 videos (2 encoded" in stdout


def test_process_rank_reads_torchrun_then_slurm(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert process_rank() == (0, 1)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert process_rank() == (3, 8)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert process_rank() == (1, 2)  # torchrun's variables win inside a Slurm allocation
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="must be integers"):
        process_rank()
