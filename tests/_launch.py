"""Run a test function in several CPU processes the way ``torchrun`` would (gloo, 127.0.0.1).

Each process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and a free MASTER_PORT in its
environment, imports a module from tests/ and calls ``function(out_dir)``; results travel back as
files the function writes into ``out_dir`` (e.g. ``rank0.pt``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(
    module: str, function: str, out_dir: Path, world_size: int = 2, timeout: float = 120
) -> None:
    """Start ``world_size`` processes running ``module.function(out_dir)``; raise if any fails."""
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import {module}; {module}.{function}({str(out_dir)!r})"
    base = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(world_size),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world_size)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [
        (r, p.returncode, out)
        for r, (p, out) in enumerate(zip(procs, outputs, strict=True))
        if p.returncode
    ]
    if failed:
        raise AssertionError(
            "\n".join(f"rank {r} exited {rc}:\n{out[-3000:]}" for r, rc, out in failed)
        )
