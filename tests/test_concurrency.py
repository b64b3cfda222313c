"""Concurrent builders and crashed writers (issue 10, §2): one world build for two processes, a
waiting process reuses the result, and temporaries of killed writers are removed at the next
start while a live writer's are kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vrlib.io import atomic_write_bytes, exclusive, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]
TINY = {"num_images": 12, "num_videos": 6}

BUILD = """
import json, os, sys
from vrlib.data.synthetic import ensure_world
out = ensure_world(sys.argv[1], "smoke", 0, **json.loads(sys.argv[2]))
st = os.stat(out / "world.json")
print("RESULT", st.st_ino, st.st_mtime_ns, flush=True)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_build_one_world_and_the_waiter_reuses_it(tmp_path: Path):
    out = tmp_path / "world"
    with exclusive(out, "holding the start line"):  # both start while the lock is taken
        procs = [_python(BUILD, str(out), json.dumps(TINY)) for _ in range(2)]
        time.sleep(0.5)
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = {line for o in outputs for line in o.splitlines() if line.startswith("RESULT")}
    assert len(results) == 1, outputs  # the same world.json: built once, reused by the other
    record = json.loads((out / "world.json").read_text())
    from vrlib.data.synthetic import PRESETS

    motion = round(PRESETS["smoke"]["motion_image_share"] * 12)  # stills of motion, added
    assert len(list((out / "images").rglob("*.png"))) == record["num_images"] == 12 + 2 * motion
    assert len(list((out / "videos").glob("*.mp4"))) == record["num_videos"] == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build left


def test_world_build_killed_halfway_leaves_the_old_world_whole(tmp_path: Path, monkeypatch):
    from vrlib.data.synthetic import ensure_world, world

    out = ensure_world(tmp_path / "w", "smoke", 0, **TINY)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing videos")

    monkeypatch.setattr(world, "write_videos", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_world(out, "smoke", 1, **TINY)  # another seed: a rebuild that dies
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert json.loads((out / "world.json").read_text())["seed"] == 0
    monkeypatch.undo()
    assert (
        json.loads((ensure_world(out, "smoke", 1, **TINY) / "world.json").read_text())["seed"] == 1
    )
    assert not (tmp_path / ".w.building").exists()


HANG_IN_SAVE = """
import os, sys, time
import vrlib.io as vio
def hang(src, dst):
    print("WRITING", flush=True)
    time.sleep(600)
vio.os.replace = hang
vio.atomic_write_bytes(sys.argv[1], b"x" * (1 << 20))
"""


def _writer_in_the_middle_of_a_save(target: Path) -> subprocess.Popen:
    proc = _python(HANG_IN_SAVE, str(target))
    assert proc.stdout.readline().strip() == "WRITING"
    return proc


def test_killed_writers_temporary_is_removed_and_a_live_writers_kept(tmp_path: Path):
    target = tmp_path / "last.pt"
    killed = _writer_in_the_middle_of_a_save(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (dead_tmp,) = tmp_path.glob(".last.pt.*.tmp")
    assert f".{killed.pid}-" in dead_tmp.name and dead_tmp.stat().st_size == 1 << 20
    legacy = tmp_path / ".last.pt.k3j_x9.tmp"  # older naming, no pid: judged by its age
    legacy.write_bytes(b"old")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    fresh_legacy = tmp_path / ".last.pt.a1b2c3.tmp"
    fresh_legacy.write_bytes(b"maybe a live writer's")

    live = _writer_in_the_middle_of_a_save(target)  # its start cleaned up after the dead one
    try:
        left = set(tmp_path.glob(".last.pt.*.tmp"))
        live_tmp = next(t for t in left if f".{live.pid}-" in t.name)
        assert left == {live_tmp, fresh_legacy}
        assert remove_stale_temporaries(target) == []  # a live writer's file is never deleted
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temporaries(target) == [live_tmp]  # now that it is dead
    atomic_write_bytes(target, b"saved")
    assert target.read_bytes() == b"saved"
    assert sorted(tmp_path.glob(".last.pt.*.tmp")) == [fresh_legacy]


def test_training_start_removes_stale_checkpoint_temporaries(tmp_path: Path):
    from test_train import _cfg, _head, make_pairs

    from vrlib.train import fit

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    left = tmp_path / f".last.pt.{int(dead.stdout)}-h4x0r.tmp"  # a 32 MB save killed halfway
    left.write_bytes(b"\0" * 1024)
    fit(_head(), make_pairs(16, 1, seed=9), None, _cfg(epochs=1, checkpoint_dir=tmp_path))
    assert not left.exists() and (tmp_path / "last.pt").is_file()


def test_ensure_expert_waits_for_the_builder_holding_its_lock(tmp_path: Path, monkeypatch):
    import threading

    from vrlib import pretrain
    from vrlib.paths import expert_path

    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    calls: list[str] = []
    monkeypatch.setattr(
        pretrain.expert, "_ensure_expert", lambda out, *a: calls.append(str(out)) or out
    )
    out = expert_path("smoke", 0)
    with exclusive(out, "training the expert elsewhere"):
        waiter = threading.Thread(target=pretrain.ensure_expert, args=("smoke", 0))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and calls == []  # blocked on the other builder's lock
    waiter.join(timeout=60)
    assert calls == [str(out)]
