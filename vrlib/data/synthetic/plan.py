"""The world's plan: which videos it has (originals and reversed twins) and the splits.

Why: planning is separate from writing so that the twins' shared caption seed and the rule
"twins stay in one split" are visible in one short module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlib.data.synthetic.config import WorldConfig
from vrlib.data.synthetic.scenes import reverse_events, sample_video


@dataclass
class PlannedVideo:
    """One video of the plan: its shots' events, its twin, and its split (set by assign_splits)."""

    video_id: str
    num_frames: int
    events: list[dict]
    caption_seed: int  # shared by a twin and its original, so their captions mirror each other
    reversed_of: str | None = None
    twin: str | None = None
    split: str = ""


def plan_videos(cfg: WorldConfig, seed: int) -> list[PlannedVideo]:
    """Every video's content: originals in order, each twin right after its original."""
    n_orig = max(1, round(cfg.num_videos / (1 + cfg.twin_fraction)))
    n_twins = min(cfg.num_videos - n_orig, n_orig)
    twinned = set(
        np.random.default_rng([seed, 4]).choice(n_orig, size=n_twins, replace=False).tolist()
    )
    videos: list[PlannedVideo] = []
    for k in range(n_orig):
        n, events = sample_video(np.random.default_rng([seed, 1, k]), cfg)
        orig = PlannedVideo(f"vid_{len(videos):06d}", n, events, caption_seed=k)
        videos.append(orig)
        if k in twinned:
            twin = PlannedVideo(
                f"vid_{len(videos):06d}", n, reverse_events(events, n), k, reversed_of=orig.video_id
            )
            orig.twin, twin.twin = twin.video_id, orig.video_id
            videos.append(twin)
    return videos


def assign_splits(videos: list[PlannedVideo], cfg: WorldConfig, seed: int) -> dict[str, list[str]]:
    """Train/val/test by video, twins kept together, at least ``min_test_twin_pairs`` in test."""
    rng = np.random.default_rng([seed, 3])
    by_id = {v.video_id: v for v in videos}
    pairs = [[v.video_id, v.twin] for v in videos if v.twin and v.reversed_of is None]
    singles = [[v.video_id] for v in videos if v.twin is None]
    total = len(videos)
    n_test, n_val = round(total * cfg.test_fraction), round(total * cfg.val_fraction)
    p_test = min(len(pairs), max(cfg.min_test_twin_pairs, round(len(pairs) * cfg.test_fraction)))
    p_val = min(len(pairs) - p_test, round(len(pairs) * cfg.val_fraction))
    s_test = int(np.clip(n_test - 2 * p_test, 0, len(singles)))
    s_val = int(np.clip(n_val - 2 * p_val, 0, len(singles) - s_test))
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    singles = [singles[i] for i in rng.permutation(len(singles))]
    groups = {
        "test": pairs[:p_test] + singles[:s_test],
        "val": pairs[p_test : p_test + p_val] + singles[s_test : s_test + s_val],
        "train": pairs[p_test + p_val :] + singles[s_test + s_val :],
    }
    splits = {}
    for name in ("train", "val", "test"):
        splits[name] = sorted(vid for group in groups[name] for vid in group)
        for vid in splits[name]:
            by_id[vid].split = name
    return splits


def image_splits(n: int, cfg: WorldConfig, seed: int) -> list[str]:
    order = np.random.default_rng([seed, 5]).permutation(n)
    n_test, n_val = round(n * cfg.image_test_fraction), round(n * cfg.image_val_fraction)
    split = np.full(n, "train", dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return [str(s) for s in split]
