"""How good a caption is, judged by what the world knows: attribute truth and BLEU-4.

Why: the world records each image's background and objects (shape, colour, size, position), so a
caption's claims can be checked exactly instead of only compared with one reference sentence.
:func:`stated_attributes` reads the claims a caption makes (using the world's own phrase tables);
:func:`attribute_precision` counts how many are true of the scene. BLEU-4 (Papineni et al. 2002)
against the reference captions is the standard text metric beside it; with one randomly worded
reference per image it mostly measures wording, which is why the attribute score leads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from vrlib.captions.base import words

ATTRIBUTE_KINDS = ("shape", "colour", "size", "position", "background")


def _phrase_table() -> list[tuple[tuple[str, ...], str, str]]:
    """(word tuple, kind, value), longest phrases first so that 'on a white background' is a
    background before 'white' can be read as an object colour."""
    from vrlib.data.synthetic import (
        BACKGROUND_PHRASES,
        COLOURS,
        POSITION_PHRASES,
        SHAPES,
        SIZES,
    )

    table = [
        (tuple(words(p)), "background", bg) for bg, ps in BACKGROUND_PHRASES.items() for p in ps
    ]
    table += [
        (tuple(words(p)), "position", pos) for pos, ps in POSITION_PHRASES.items() for p in ps
    ]
    table += [((s,), "shape", s) for s in SHAPES]
    table += [((c,), "colour", c) for c in COLOURS]
    table += [((s,), "size", s) for s in SIZES]
    return sorted(table, key=lambda row: -len(row[0]))


def stated_attributes(caption: str) -> list[tuple[str, str]]:
    """The (kind, value) claims of a caption, in reading order, e.g.
    ``"a red circle on the left on a gray background"`` ->
    ``[("colour", "red"), ("shape", "circle"), ("position", "left"), ("background", "gray")]``.
    """
    table = _phrase_table()
    tokens, out, i = words(caption), [], 0
    while i < len(tokens):
        for phrase, kind, value in table:
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                out.append((kind, value))
                i += len(phrase)
                break
        else:
            i += 1
    return out


def true_attributes(scene: dict) -> set[tuple[str, str]]:
    """Every (kind, value) a scene makes true: its background and each object's attributes."""
    out = {("background", scene["background"])}
    for obj in scene["objects"]:
        out.update((k, obj[k]) for k in ("shape", "colour", "size", "position"))
    return out


def attribute_precision(captions: Sequence[str], scenes: Sequence[dict]) -> dict[str, float]:
    """Fraction of stated attributes that are true of the scene, overall and per kind.

    A claim is true when some object of the scene has that value (or the background is that
    one); binding ("the red one is the circle") is not checked. Also returns ``recall`` (the
    fraction of the scene's true attributes that captions state) and ``stated_per_caption``, so a
    captioner cannot look precise by saying nothing.

    Returns:
        ``{"precision", "recall", "stated_per_caption", "precision_<kind>" for each kind}``;
        a kind never stated has precision NaN.
    """
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions but {len(scenes)} scenes")
    true_by_kind, stated_by_kind = Counter(), Counter()
    hits = total_true = 0
    for caption, scene in zip(captions, scenes, strict=True):
        truth = true_attributes(scene)
        claims = set(stated_attributes(caption))
        for kind, value in claims:
            stated_by_kind[kind] += 1
            true_by_kind[kind] += (kind, value) in truth
        hits += len(claims & truth)
        total_true += len(truth)
    stated = sum(stated_by_kind.values())
    out = {
        "precision": sum(true_by_kind.values()) / stated if stated else math.nan,
        "recall": hits / total_true if total_true else math.nan,
        "stated_per_caption": stated / max(1, len(captions)),
    }
    for kind in ATTRIBUTE_KINDS:
        n = stated_by_kind[kind]
        out[f"precision_{kind}"] = true_by_kind[kind] / n if n else math.nan
    return out


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4
) -> float:
    """Corpus-level BLEU (Papineni et al. 2002) in [0, 1], no smoothing.

    Clipped n-gram counts (each n-gram counted at most as often as in the reference where it is
    most frequent) are summed over the corpus for n = 1..max_n; their precisions are combined by a
    geometric mean and multiplied by the brevity penalty ``exp(1 - r / c)`` when the total
    hypothesis length c is below r, the sum of the reference lengths closest to each hypothesis
    (ties: the shorter). Tokens are :func:`vrlib.captions.base.words`.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    matched, possible = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        h, rs = words(hyp), [words(r) for r in refs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(h, n)
            best = Counter()
            for r in rs:
                best |= _ngrams(r, n)  # elementwise max over references
            matched[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            possible[n - 1] += max(0, len(h) - n + 1)
    if min(matched) == 0 or hyp_len == 0:
        return 0.0
    log_precision = sum(math.log(m / p) for m, p in zip(matched, possible, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def evaluate_captions(
    captions: Sequence[str], scenes: Sequence[dict], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """:func:`attribute_precision` plus ``bleu4`` and the number of captions and distinct ones."""
    out = attribute_precision(captions, scenes)
    out["bleu4"] = corpus_bleu(captions, references)
    out["num_captions"] = len(captions)
    out["distinct_captions"] = len(set(captions))
    return out


def evaluate_captioner(
    captioner, world_dir, split: str = "test", limit: int | None = None
) -> dict[str, float]:
    """Caption a world split's still images with ``captioner`` and score them (:func:`evaluate_captions`).

    Args:
        captioner: any :class:`vrlib.captions.base.Captioner`.
        world_dir: a synthetic world.
        split: held-out images by default (captioners train on ``train``).
        limit: score only the first ``limit`` images (quick checks).
    """
    from vrlib.captions.train import load_world_images

    images = load_world_images(world_dir, split)
    n = len(images.captions) if limit is None else min(limit, len(images.captions))
    captions = captioner.caption(images.frames[:n])
    return evaluate_captions(captions, images.attributes[:n], [[c] for c in images.captions[:n]])


def video_frame_samples(
    world_dir, split: str = "test", per_video: int = 3
) -> tuple[list[tuple[str, list[int]]], list[dict]]:
    """Which frames of ``split``'s videos to caption: ``per_video`` evenly spaced good frames of
    each (bad frames, ``meta["bad_frames"]``, show no scene to check), and each frame's scene.

    Returns:
        ``[(video path, [frame indices])]`` and, frame by frame in that order, the scenes
        (``synthetic.scene_at``: background and objects).
    """
    import json
    from pathlib import Path

    from vrlib.data.synthetic import scene_at

    root = Path(world_dir)
    rows = [
        json.loads(x)
        for x in (root / "annotations" / "videos.jsonl").read_text().splitlines()
        if x.strip()
    ]
    picks, scenes = [], []
    for v in rows:
        if v["split"] != split:
            continue
        meta = v["meta"]
        good = sorted(set(range(meta["num_frames"])) - set(meta.get("bad_frames", [])))
        chosen = (
            [good[int(j)] for j in np.linspace(0, len(good) - 1, per_video).round()] if good else []
        )
        picks.append((str(root / v["path"]), chosen))
        scenes += [scene_at(meta["events"], i) for i in chosen]
    return picks, scenes


def evaluate_captioner_on_frames(
    captioner, world_dir, split: str = "test", per_video: int = 3, limit: int | None = None
) -> dict[str, float]:
    """Caption video frames (decoded from the mp4, nuisances and all) and score them against the
    scene each frame shows (:func:`evaluate_captions`; references: the frame's canonical caption).

    Why beside :func:`evaluate_captioner`: study 03's captioners caption video frames, which the
    image->video gap (``video_shift``) makes harder than the stills they learned from.

    Args:
        per_video: good frames per video, evenly spaced (:func:`video_frame_samples`).
        limit: score only the first ``limit`` videos (quick checks).
    """
    from vrlib.data.synthetic import describe_scene
    from vrlib.data.video import read_frames

    picks, scenes = video_frame_samples(world_dir, split, per_video)
    picks = picks if limit is None else picks[:limit]
    frames = [read_frames(path, idx) for path, idx in picks if idx]
    scenes = scenes[: sum(len(idx) for _, idx in picks)]
    captions = captioner.caption(np.concatenate(frames)) if frames else []
    references = [[describe_scene(s)] for s in scenes]
    return evaluate_captions(captions, scenes, references) | {"frames_per_video": per_video}


def majority_caption(scenes: Sequence[dict]) -> str:
    """The constant baseline: one caption stating the most frequent value of every attribute.

    A captioner that ignores its input can do no better on attribute precision than always
    naming the commonest shape, colour, size, position and background of its training images.
    """
    from vrlib.data.synthetic import describe_scene

    counts = {kind: Counter() for kind in ATTRIBUTE_KINDS}
    for scene in scenes:
        counts["background"][scene["background"]] += 1
        for obj in scene["objects"]:
            for kind in ("shape", "colour", "size", "position"):
                counts[kind][obj[kind]] += 1
    mode = {kind: c.most_common(1)[0][0] for kind, c in counts.items()}
    obj = {k: mode[k] for k in ("shape", "colour", "size", "position")}
    return describe_scene({"background": mode["background"], "objects": [obj]})
