"""Writers: the world's own files (images, videos, annotations) and the MSR-VTT formats.

Why: the annotations are written both in the world's schema (INTERFACES.md) and in CLIP4Clip's
``msrvtt_data`` files, so the real MSR-VTT reader runs on the synthetic world unchanged.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from vrlib.data.synthetic.captions import describe_scene, motion_caption, video_captions
from vrlib.data.synthetic.config import EVENT_TYPES, WORLD_VERSION, WorldConfig
from vrlib.data.synthetic.motion import (
    render_motion_image,
    reverse_motion_image,
    sample_motion_image,
)
from vrlib.data.synthetic.nuisance import apply_bad_frames, apply_shift
from vrlib.data.synthetic.plan import PlannedVideo, image_splits
from vrlib.data.synthetic.render import encode_mp4, render, render_video
from vrlib.data.synthetic.scenes import concepts, sample_image
from vrlib.io import atomic_write_bytes, atomic_write_text, write_json


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _progress(iterable, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def image_rows(cfg: WorldConfig, seed: int) -> list[dict]:
    """Every image's annotation row (no pixels): the plain stills, the motion stills, then the
    motion stills' reversed twins in the same order (``twin`` names the other one of a pair,
    ``reversed_of`` marks the twin).

    Why apart from :func:`write_images`: the captions of a world can be read (e.g. to check that
    every video word occurs in an image caption) without rendering a pixel.
    """
    splits = image_splits(cfg.num_images, cfg, seed)
    rows = []
    for i in range(cfg.num_images):
        rng = np.random.default_rng([seed, 0, i])
        attributes = sample_image(rng, cfg)
        rows.append(_image_row(i, describe_scene(attributes, rng), splits[i], attributes))
    count = round(cfg.motion_image_share * cfg.num_images)
    twins = []
    for m in range(count):
        rng = np.random.default_rng([seed, 8, m])
        attributes = sample_motion_image(rng, cfg)
        twin_rng = copy.deepcopy(rng)  # the twin's caption makes the same draws (as video twins)
        caption = motion_caption(attributes["motion"]["events"], rng)
        i, j = cfg.num_images + m, cfg.num_images + count + m
        rows.append(_image_row(i, caption, "train", attributes) | {"twin": _image_id(j)})
        reverse = reverse_motion_image(attributes)
        caption = motion_caption(reverse["motion"]["events"], twin_rng)
        twins.append(
            _image_row(j, caption, "train", reverse)
            | {"twin": _image_id(i), "reversed_of": _image_id(i)}
        )
    return rows + twins


def _image_id(i: int) -> str:
    return f"img_{i:06d}"


def _image_row(i: int, caption: str, split: str, attributes: dict) -> dict:
    return {
        "image_id": _image_id(i),
        "path": f"images/{_image_id(i)}.png",
        "caption": caption,
        "split": split,
        "attributes": attributes,
    }


def write_images(out: Path, cfg: WorldConfig, seed: int) -> list[dict]:
    from PIL import Image

    rows = image_rows(cfg, seed)
    for row in _progress(rows, len(rows), "world images"):
        attributes = row["attributes"]
        if "motion" in attributes:
            pixels = render_motion_image(attributes, cfg.size)
        else:
            pixels = render(attributes["background"], attributes["objects"], cfg.size)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        atomic_write_bytes(out / row["path"], buf.getvalue())
    return rows


def video_frames(v: PlannedVideo, cfg: WorldConfig, seed: int) -> list[np.ndarray]:
    """An original video's frames as its mp4 holds them before compression: the scene, its bad
    frames, then the video-only nuisances (``nuisance``)."""
    frames = render_video(v.num_frames, v.events, cfg.size)
    if v.bad_frames:
        frames = apply_bad_frames(frames, v.bad_frames)
    if v.shift is not None:
        frames = apply_shift(frames, v.shift, np.random.default_rng([seed, 12, v.caption_seed]))
    return frames


def write_videos(out: Path, videos: list[PlannedVideo], cfg: WorldConfig, seed: int = 0) -> None:
    """Render each original once; its twin is the same frame list reversed."""
    frames_of: dict[str, list[np.ndarray]] = {}
    for v in _progress(videos, len(videos), "world videos"):
        if v.reversed_of is None:
            frames = video_frames(v, cfg, seed)
            if v.twin:
                frames_of[v.video_id] = frames
        else:
            frames = frames_of.pop(v.reversed_of)[::-1]
        crf = v.shift["crf"] if v.shift is not None else 20
        atomic_write_bytes(out / "videos" / f"{v.video_id}.mp4", encode_mp4(frames, cfg.fps, crf))


def annotation_rows(
    videos: list[PlannedVideo], cfg: WorldConfig, seed: int, held_out: list | None = None
) -> tuple[list[dict], list[dict]]:
    """videos.jsonl and captions.jsonl rows; ``held_out``: the concepts kept out of training
    videos (a video's ``meta["held_out_concepts"]`` lists those it shows)."""
    held = {tuple(c) for c in held_out or []}
    video_rows, caption_rows = [], []
    for v in videos:
        meta = {
            "duration": v.num_frames / cfg.fps,
            "num_frames": v.num_frames,
            "fps": cfg.fps,
            "width": cfg.size,
            "height": cfg.size,
            "num_shots": len(v.events),
            "events": v.events,
            "reversed_of": v.reversed_of,
            "twin": v.twin,
        }
        if v.shift is not None:
            meta["shift"] = v.shift
        if v.bad_frames is not None:
            meta["bad_frames"] = sorted(v.bad_frames)
            meta["bad_frame_kinds"] = [v.bad_frames[i] for i in sorted(v.bad_frames)]
        if held:
            meta["held_out_concepts"] = sorted(map(list, concepts(v.events) & held))
        video_rows.append(
            {
                "video_id": v.video_id,
                "path": f"videos/{v.video_id}.mp4",
                "split": v.split,
                "meta": meta,
            }
        )
        rng = np.random.default_rng([seed, 2, v.caption_seed])
        for text, tags in video_captions(v.events, cfg.captions_per_video, rng):
            caption_rows.append({"video_id": v.video_id, "caption": text, "tags": tags})
    return video_rows, caption_rows


_MSRVTT_SPLIT = {"train": "train", "val": "validate", "test": "test"}


def write_msrvtt(out: Path, video_rows: list[dict], caption_rows: list[dict], seed: int) -> None:
    """The same world in CLIP4Clip's ``msrvtt_data`` files, videos linked under videos/all/."""
    root = out / "msrvtt"
    videos = [
        {
            "category": EVENT_TYPES.index(r["meta"]["events"][0]["type"]),
            "url": f"https://vrlib.invalid/watch?v={r['video_id']}",
            "video_id": r["video_id"],
            "start time": 0.0,
            "end time": r["meta"]["duration"],
            "split": _MSRVTT_SPLIT[r["split"]],
            "id": i,
        }
        for i, r in enumerate(video_rows)
    ]
    sentences = [
        {"caption": c["caption"], "video_id": c["video_id"], "sen_id": i}
        for i, c in enumerate(caption_rows)
    ]
    info = {
        "contributor": "vrlib.data.synthetic",
        "data_created": "generated (deterministic from the seed)",
        "version": str(WORLD_VERSION),
        "description": f"vrlib embedded synthetic world (seed {seed}) in MSR-VTT's format",
        "year": "2016",
    }
    write_json(
        root / "MSRVTT_data.json",
        {"info": info, "videos": videos, "sentences": sentences},
        indent=None,
    )

    # 1k-A style test: one full description per test video, chosen from the seed.
    rng = np.random.default_rng([seed, 6])
    full = {}
    for c in caption_rows:
        if "full" in c["tags"]:
            full.setdefault(c["video_id"], []).append(c["caption"])
    test = [r["video_id"] for r in video_rows if r["split"] == "test"]
    rows = [
        [
            f"ret{k}",
            f"msr{int(vid.split('_')[1])}",
            vid,
            full[vid][int(rng.integers(len(full[vid])))],
        ]
        for k, vid in enumerate(test)
    ]
    _write_csv(root / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"], rows)
    train = [[r["video_id"]] for r in video_rows if r["split"] == "train"]
    train_val = [[r["video_id"]] for r in video_rows if r["split"] in ("train", "val")]
    _write_csv(root / "MSRVTT_train.9k.csv", ["video_id"], train_val)
    _write_csv(root / "MSRVTT_train.7k.csv", ["video_id"], train)

    links = root / "videos" / "all"
    links.mkdir(parents=True, exist_ok=True)
    for r in video_rows:
        _link(out / r["path"], links / f"{r['video_id']}.mp4")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _link(target: Path, link: Path) -> None:
    """Relative symlink, else a hard link, else a copy (filesystems without links)."""
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(os.path.relpath(target, link.parent))
    except OSError:
        try:
            os.link(target, link)
        except OSError:
            shutil.copyfile(target, link)
