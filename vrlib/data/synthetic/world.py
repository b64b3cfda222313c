"""Generating a world into a folder, and :func:`ensure_world`, which redoes a stale one.

Why: ``world.json`` is written last and records the preset, seed, parameters and the hash of
the generator's source, so an interrupted or outdated world is detected and regenerated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from vrlib.data.synthetic.config import WORLD_VERSION, WorldConfig, resolve_config
from vrlib.data.synthetic.nuisance import crf_for
from vrlib.data.synthetic.plan import apply_concept_holdout, assign_splits, plan_videos
from vrlib.data.synthetic.render import x264_options
from vrlib.data.synthetic.writers import (
    annotation_rows,
    jsonl_text,
    write_images,
    write_msrvtt,
    write_videos,
)
from vrlib.io import atomic_write_text, exclusive, read_json, replace_dir, write_json

_MARKER = ".vrlib-world"


def _check_target(out: Path) -> None:
    """Refuse a target that is a file, or a non-empty folder that is not a world."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if (
        out.is_dir()
        and any(out.iterdir())
        and not (out / _MARKER).exists()
        and not (out / "world.json").exists()
    ):
        raise ValueError(
            f"{out}: folder is not empty and is not a vrlib world (no {_MARKER}); choose an empty or new folder"
        )


def _building_dir(out: Path) -> Path:
    """The sibling folder a world is built in before it is renamed to ``out``."""
    return out.with_name(f".{out.name}.building")


def generate_world(
    out_dir: str | os.PathLike, preset: str = "default", seed: int = 0, **overrides: Any
) -> Path:
    """Generate the world into ``out_dir`` (replacing a previous world there) and return the path.

    Args:
        out_dir: folder to write; must be new, empty, or a previous (possibly unfinished) world.
        preset: ``"smoke"`` (~300 images, ~24 videos, seconds) or ``"default"`` (~6000 images,
            ~720 videos, 240 of them reversed twins, minutes).
        seed: decides every random choice; the same seed gives identical files.
        **overrides: :class:`WorldConfig` fields to change (unknown keys raise ValueError).

    Returns:
        ``Path(out_dir)``, holding world.json, images/, videos/, annotations/, splits.json and
        msrvtt/ (layout in INTERFACES.md).
    """
    cfg = resolve_config(preset, **overrides)
    out = Path(out_dir).expanduser()
    _check_target(out)
    with exclusive(out, f"generating the world {out}"):
        return _build(out, preset, seed, cfg)


def _build(out: Path, preset: str, seed: int, cfg: WorldConfig) -> Path:
    """Write the world into a fresh sibling folder, then swap it into ``out`` (lock held).

    Why a sibling: the world at ``out`` stays whole (old or new) for anyone reading it, and a
    build killed halfway leaves only the sibling, which the next build (holding the same lock,
    so no one else is writing it) deletes first.
    """
    work = _building_dir(out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    atomic_write_text(work / _MARKER, "made by vrlib.data.synthetic; world.json is written last\n")
    _write(work, preset, seed, cfg)
    return replace_dir(work, out)


def _write(out: Path, preset: str, seed: int, cfg: WorldConfig) -> None:
    images = write_images(out, cfg, seed)
    videos = plan_videos(cfg, seed)
    splits = assign_splits(videos, cfg, seed)
    held_out = apply_concept_holdout(videos, cfg, seed)
    write_videos(out, videos, cfg, seed)
    video_rows, caption_rows = annotation_rows(videos, cfg, seed, held_out)
    atomic_write_text(out / "annotations" / "images.jsonl", jsonl_text(images))
    atomic_write_text(out / "annotations" / "videos.jsonl", jsonl_text(video_rows))
    atomic_write_text(out / "annotations" / "captions.jsonl", jsonl_text(caption_rows))
    write_json(out / "splits.json", splits)
    write_msrvtt(out, video_rows, caption_rows, seed)
    record = _world_record(preset, seed, cfg, len(images), len(videos))
    write_json(out / "world.json", record | {"held_out_concepts": [list(c) for c in held_out]})


def generator_sha() -> str:
    """SHA-256 of the generator's source (every module of this package): a world records it.

    Why: a world made by an older generator must never stand behind a report made with newer
    code. ``WORLD_VERSION`` relies on someone remembering to bump it; the source hash does not
    (any edit to any module of the generator regenerates worlds, which costs a couple of minutes
    for the default preset).
    """
    return sources_sha(Path(__file__).parent)


def sources_sha(folder: Path) -> str:
    """SHA-256 over the ``*.py`` files in ``folder``, sorted by name, each name and its bytes.

    The name is hashed with its content, so renaming or moving code between modules changes
    the hash too; sorting makes it independent of the file system's listing order.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py"), key=lambda p: p.name):
        source = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + len(source).to_bytes(8, "little"))
        digest.update(source)
    return digest.hexdigest()


def _world_record(
    preset: str, seed: int, cfg: WorldConfig, num_images: int, num_videos: int
) -> dict:
    import av

    return {
        "preset": preset,
        "seed": seed,
        "version": WORLD_VERSION,
        "generator_sha": generator_sha(),
        "params": dataclasses.asdict(cfg),
        "num_images": num_images,
        "num_videos": num_videos,
        "encoder": {
            "codec": "libx264",
            "pix_fmt": "yuv420p",
            "options": x264_options(crf_for(cfg.video_shift)),
            "av": av.__version__,
        },
    }


def ensure_world(
    out_dir: str | os.PathLike, preset: str = "default", seed: int = 0, **overrides: Any
) -> Path:
    """Return ``out_dir`` with a complete world of this preset/seed, generating it if needed.

    Regenerates when ``world.json`` is missing (never generated, or interrupted: it is written
    last), unreadable, or records another preset, seed, version, parameters or generator source
    (:func:`generator_sha`). Concurrent calls for one folder build it once: the others wait for
    the lock and then reuse the finished world.
    """
    cfg = resolve_config(preset, **overrides)
    out = Path(out_dir).expanduser()
    if _is_current(out, preset, seed, cfg):
        return out
    _check_target(out)
    with exclusive(out, f"generating the world {out}"):
        if _is_current(out, preset, seed, cfg):  # built by the process we waited for
            return out
        return _build(out, preset, seed, cfg)


def _is_current(out: Path, preset: str, seed: int, cfg: WorldConfig) -> bool:
    """Whether ``out`` holds a finished world of this preset, seed, version, config and generator."""
    try:
        record = read_json(out / "world.json")
    except (FileNotFoundError, ValueError):
        record = None
    wanted = {
        "preset": preset,
        "seed": seed,
        "version": WORLD_VERSION,
        "generator_sha": generator_sha(),
        "params": dataclasses.asdict(cfg),
    }
    return isinstance(record, dict) and all(record.get(k) == v for k, v in wanted.items())
