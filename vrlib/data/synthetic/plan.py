"""The world's plan: which videos it has (originals and reversed twins) and the splits.

Why: planning is separate from writing so that the twins' shared caption seed and the rule
"twins stay in one split" are visible in one short module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrlib.data.synthetic.config import COLOURS, SHAPES, WorldConfig
from vrlib.data.synthetic.nuisance import plan_bad_frames, sample_shift
from vrlib.data.synthetic.scenes import concepts, reverse_events, sample_video

HOLDOUT_KEEP = (
    0.1  # share of training videos with a held-out concept that keep it (rare, not absent)
)


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
    shift: dict | None = None  # nuisance.sample_shift's draw (None when video_shift is 0)
    bad_frames: dict[int, str] | None = None  # nuisance.plan_bad_frames' (None when share is 0)


def _content(cfg: WorldConfig, seed: int, k: int, avoid: frozenset = frozenset(), redraw: int = 0):
    """Original ``k``'s frames, events, nuisances and bad frames, each from its own stream
    (``redraw`` > 0: a redraw for the concept holdout)."""
    stream = [seed, 1, k] if redraw == 0 else [seed, 9, k, redraw]
    n, events = sample_video(np.random.default_rng(stream), cfg, avoid)
    degrade = np.random.default_rng([seed, 7, k, redraw])
    shift = bad = None
    if cfg.video_shift > 0:
        shift = sample_shift(degrade, cfg.video_shift, len(events))
        for ev, video_only in zip(events, shift["video_backgrounds"], strict=True):
            if video_only:
                ev["background_style"] = "video"
    if cfg.bad_frame_share > 0:
        bad = plan_bad_frames(degrade, events, n, cfg.bad_frame_share)
    return n, events, shift, bad


def _set_twin(twin: PlannedVideo, orig: PlannedVideo) -> None:
    """The twin's annotations: the original's, played backwards."""
    n = orig.num_frames
    twin.num_frames, twin.events = n, reverse_events(orig.events, n)
    twin.shift = None
    if orig.shift is not None:
        twin.shift = orig.shift | {
            "light": orig.shift["light"][::-1],
            "video_backgrounds": orig.shift["video_backgrounds"][::-1],
        }
    twin.bad_frames = None
    if orig.bad_frames is not None:
        twin.bad_frames = {n - 1 - i: kind for i, kind in sorted(orig.bad_frames.items())[::-1]}


def plan_videos(cfg: WorldConfig, seed: int) -> list[PlannedVideo]:
    """Every video's content: originals in order, each twin right after its original."""
    n_orig = max(1, round(cfg.num_videos / (1 + cfg.twin_fraction)))
    n_twins = min(cfg.num_videos - n_orig, n_orig)
    twinned = set(
        np.random.default_rng([seed, 4]).choice(n_orig, size=n_twins, replace=False).tolist()
    )
    videos: list[PlannedVideo] = []
    for k in range(n_orig):
        n, events, shift, bad = _content(cfg, seed, k)
        orig = PlannedVideo(f"vid_{len(videos):06d}", n, events, k, shift=shift, bad_frames=bad)
        videos.append(orig)
        if k in twinned:
            twin = PlannedVideo(f"vid_{len(videos):06d}", n, [], k, reversed_of=orig.video_id)
            _set_twin(twin, orig)
            orig.twin, twin.twin = twin.video_id, orig.video_id
            videos.append(twin)
    return videos


def held_out_concepts(cfg: WorldConfig, seed: int) -> list[tuple[str, str]]:
    """The (shape, colour) combinations ``video_concept_holdout`` keeps out of training videos."""
    combos = [(s, c) for s in SHAPES for c in COLOURS]
    count = round(cfg.video_concept_holdout * len(combos))
    pick = np.random.default_rng([seed, 10]).choice(len(combos), size=count, replace=False)
    return sorted(combos[i] for i in pick)


def apply_concept_holdout(
    videos: list[PlannedVideo], cfg: WorldConfig, seed: int
) -> list[tuple[str, str]]:
    """Redraw training videos that show a held-out concept (all but ``HOLDOUT_KEEP`` of them),
    twins with them; val and test keep theirs. Returns the held-out concepts.

    Why after the splits: which videos are train is decided by the twin structure alone
    (:func:`assign_splits`), so redrawing their content leaves the splits as they are.
    """
    held = held_out_concepts(cfg, seed)
    if not held:
        return held
    avoid = frozenset(held)
    by_id = {v.video_id: v for v in videos}
    keep_rng = np.random.default_rng([seed, 11])
    for v in videos:
        if v.reversed_of is not None or v.split != "train" or not concepts(v.events) & avoid:
            continue
        if keep_rng.random() < HOLDOUT_KEEP:
            continue
        v.num_frames, v.events, v.shift, v.bad_frames = _content(
            cfg, seed, v.caption_seed, avoid, 1
        )
        if v.twin:
            _set_twin(by_id[v.twin], v)
    return held


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
