"""The embedded synthetic world: captioned images and H.264 videos the workbench makes itself.

Why: no pretrained CLIP weights and no benchmark videos can be downloaded where this is built and
tested, so every study runs on a world generated here, built to contain the effect each paper
studies (see DESIGN.md, "The embedded default world"):

- **images** (static scenes, captions without motion words) pretrain the image-text expert, the
  way CLIP only ever saw still images;
- **videos** have 1-3 shots and one event per shot (move, grow/shrink, colour change,
  appear/disappear); longer videos tend to have more shots, so one frame at 1 s misses the later
  shots (frame aggregation, Portillo-Quintero 2021);
- some videos have a **reversed twin** (the same frames in reverse order, the opposite caption):
  no order-blind aggregation can tell a pair apart, a temporal model can (CLIP2Video);
- about 20 captions per video: full, paraphrased, partial and a few about sound only (as in
  MSR-VTT); ``tags`` say which, and ``temporal`` marks the captions whose truth depends on order
  or direction;
- the annotations are also written in MSR-VTT's own file formats (CLIP4Clip's ``msrvtt_data``)
  so the real readers run on it.

Everything is drawn from ``seed`` with one random stream per item, and the x264 encoder is pinned
to options that were checked to give byte-identical files run after run (one thread, no
macroblock tree, no weighted P prediction: with those two on, libx264 gave different but
equally-decoding bitstreams across runs). ``world.json`` is written last, so an interrupted
generation is detected by :func:`ensure_world` and redone.

The per-frame state of a video is a pure function of its ``meta["events"]`` (:func:`scene_at`),
and frames are rendered from it, so the annotations describe exactly what is on screen; a
frame-level "oracle captioner" is :func:`describe_frame`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vrlib.io import atomic_write_bytes, atomic_write_text, read_json, write_json

WORLD_VERSION = 1  # bump whenever the files written for a given (preset, seed) change

# ----------------------------------------------------------------------------- vocabulary

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring")
# Saturated, far-apart colours that survive yuv420p chroma subsampling and downscaling to 64 px.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (245, 215, 40),
    "purple": (150, 60, 190),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
# Object radius as a fraction of the frame side (112 px: 16 and 26 px; at 64 px: 9 and 15 px).
SIZES: dict[str, float] = {"small": 0.14, "large": 0.232}
# Anchor centres (x, y) as fractions of the frame; y grows downwards like image rows.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
# Plain backgrounds are named by colour; textures are two greys so every object colour shows.
PLAIN_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (232, 232, 232),
    "gray": (128, 128, 128),
    "black": (28, 28, 28),
}
TEXTURE_GREYS = ((200, 200, 200), (100, 100, 100))
BACKGROUNDS = (*PLAIN_BACKGROUNDS, "stripes", "checkerboard")

EVENT_TYPES = (
    "moves_left",
    "moves_right",
    "moves_up",
    "moves_down",
    "grows",
    "shrinks",
    "changes_colour",
    "appears",
    "disappears",
)
OPPOSITE = {
    "moves_left": "moves_right",
    "moves_right": "moves_left",
    "moves_up": "moves_down",
    "moves_down": "moves_up",
    "grows": "shrinks",
    "shrinks": "grows",
    "changes_colour": "changes_colour",
    "appears": "disappears",
    "disappears": "appears",
}
# Which start -> end anchors a move crosses (the object always travels across the frame).
_MOVES = {
    "moves_left": ("right", "left"),
    "moves_right": ("left", "right"),
    "moves_up": ("bottom", "top"),
    "moves_down": ("top", "bottom"),
}
_EVENT_KINDS = {  # kind -> (probability, event types)
    "move": (0.35, ("moves_left", "moves_right", "moves_up", "moves_down")),
    "size": (0.25, ("grows", "shrinks")),
    "colour": (0.2, ("changes_colour",)),
    "visibility": (0.2, ("appears", "disappears")),
}
CAPTION_TAGS = ("audio", "temporal", "partial", "paraphrase", "full")

# Phrase tables shared by image, frame and video captions, so every visual word a video caption
# uses is one the image-text expert saw on images.
POSITION_PHRASES = {
    "left": ("on the left", "at the left side"),
    "right": ("on the right", "at the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "centre": ("in the centre", "in the middle"),
}
BACKGROUND_PHRASES = {
    **{
        c: (f"on a {c} background", f"against a {c} background", f"on a plain {c} background")
        for c in PLAIN_BACKGROUNDS
    },
    "stripes": ("on stripes", "on a striped background", "against a striped background"),
    "checkerboard": (
        "on a checkerboard",
        "on a checkerboard background",
        "against a checkered background",
    ),
}
# (present tense, gerund); {a} and {b} are the colours before and after a colour change.
EVENT_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "moves_left": (
        ("moves left", "moving left"),
        ("moves to the left", "moving to the left"),
        ("slides from the right to the left", "sliding from the right to the left"),
        ("goes from right to left", "going from right to left"),
    ),
    "moves_right": (
        ("moves right", "moving right"),
        ("moves to the right", "moving to the right"),
        ("slides from the left to the right", "sliding from the left to the right"),
        ("goes from left to right", "going from left to right"),
    ),
    "moves_up": (
        ("moves up", "moving up"),
        ("moves to the top", "moving to the top"),
        ("rises from the bottom to the top", "rising from the bottom to the top"),
        ("goes upward", "going upward"),
    ),
    "moves_down": (
        ("moves down", "moving down"),
        ("moves to the bottom", "moving to the bottom"),
        ("falls from the top to the bottom", "falling from the top to the bottom"),
        ("goes downward", "going downward"),
    ),
    "grows": (
        ("grows", "growing"),
        ("gets bigger", "getting bigger"),
        ("grows from small to large", "growing from small to large"),
        ("becomes larger", "becoming larger"),
    ),
    "shrinks": (
        ("shrinks", "shrinking"),
        ("gets smaller", "getting smaller"),
        ("shrinks from large to small", "shrinking from large to small"),
        ("becomes smaller", "becoming smaller"),
    ),
    "changes_colour": (
        ("turns from {a} to {b}", "turning from {a} to {b}"),
        ("changes from {a} to {b}", "changing from {a} to {b}"),
        ("changes colour from {a} to {b}", "changing colour from {a} to {b}"),
        ("goes from {a} to {b}", "going from {a} to {b}"),
    ),
    "appears": (
        ("appears", "appearing"),
        ("suddenly appears", "suddenly appearing"),
        ("pops into view", "popping into view"),
        ("shows up", "showing up"),
    ),
    "disappears": (
        ("disappears", "disappearing"),
        ("suddenly vanishes", "suddenly vanishing"),
        ("vanishes from view", "vanishing from view"),
        ("goes away", "going away"),
    ),
}
# The attribute an event changes is left out of the subject ("a red circle grows", not "a small
# red circle grows"); a move also changes the position.
_CHANGED_ATTRIBUTES = {
    **{t: ("position",) for t in _MOVES},
    "grows": ("size",),
    "shrinks": ("size",),
    "changes_colour": ("colour",),
    "appears": (),
    "disappears": (),
}
# Sound-only captions, like MSR-VTT's: nothing in the frames can match them.
AUDIO_CAPTIONS = (
    "a loud beep is heard",
    "music plays while someone speaks",
    "music is playing",
    "a man is talking",
    "a woman is speaking",
    "someone is singing a song",
    "people are cheering and clapping",
    "a voice narrates in the background",
    "a dog barks in the distance",
    "loud music plays",
    "a phone is ringing",
    "someone laughs",
)
_SOMETHING = ("an object", "a shape", "something")

# Pinned H.264 settings (see the module docstring for why mbtree and weightp are off).
X264_OPTIONS = {
    "crf": "20",
    "preset": "medium",
    "g": "20",
    "threads": "1",
    "x264-params": "mbtree=0:weightp=0",
}

# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides a world's content, besides the seed.

    Attributes:
        num_images: captioned still images (train/val/test).
        num_videos: videos including reversed twins.
        twin_fraction: share of original videos that get a reversed twin.
        min_duration, max_duration: video length range in seconds (log-uniform).
        fps: frames per second of every video.
        size: frame side in pixels (images and videos are square; must be even for yuv420p).
        max_shots: most shots per video.
        min_shot_seconds: shortest shot.
        captions_per_video: target number of captions per video.
        static_object_prob: chance that a shot has a second, motionless object.
        two_object_image_prob: chance that an image shows two objects.
        val_fraction, test_fraction: share of videos in val and test (twins stay together).
        image_val_fraction, image_test_fraction: same for images.
        min_test_twin_pairs: at least this many twin pairs go to test (when there are enough).
    """

    num_images: int = 6000
    num_videos: int = 600
    twin_fraction: float = 0.2
    min_duration: float = 2.0
    max_duration: float = 12.0
    fps: int = 10
    size: int = 112
    max_shots: int = 3
    min_shot_seconds: float = 1.5
    captions_per_video: int = 20
    static_object_prob: float = 0.3
    two_object_image_prob: float = 0.4
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    image_val_fraction: float = 0.1
    image_test_fraction: float = 0.1
    min_test_twin_pairs: int = 2

    def __post_init__(self) -> None:
        checks = [
            ("num_images", self.num_images >= 1, ">= 1"),
            ("num_videos", self.num_videos >= 1, ">= 1"),
            ("twin_fraction", 0.0 <= self.twin_fraction <= 1.0, "in [0, 1]"),
            ("min_duration", self.min_duration > 0, "> 0"),
            ("max_duration", self.max_duration >= self.min_duration, ">= min_duration"),
            ("fps", self.fps >= 1, ">= 1"),
            ("size", self.size >= 32 and self.size % 2 == 0, "even and >= 32"),
            ("max_shots", 1 <= self.max_shots <= 3, "in 1..3"),
            (
                "min_shot_seconds",
                0 < self.min_shot_seconds <= self.min_duration,
                "in (0, min_duration]",
            ),
            ("captions_per_video", self.captions_per_video >= 4, ">= 4"),
            ("static_object_prob", 0.0 <= self.static_object_prob <= 1.0, "in [0, 1]"),
            ("two_object_image_prob", 0.0 <= self.two_object_image_prob <= 1.0, "in [0, 1]"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            (
                "test_fraction",
                0.0 <= self.test_fraction < 1.0 - self.val_fraction,
                "in [0, 1 - val_fraction)",
            ),
            ("image_val_fraction", 0.0 <= self.image_val_fraction < 1.0, "in [0, 1)"),
            (
                "image_test_fraction",
                0.0 <= self.image_test_fraction < 1.0 - self.image_val_fraction,
                "in [0, 1 - image_val_fraction)",
            ),
            ("min_test_twin_pairs", self.min_test_twin_pairs >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ValueError(f"world parameter {key}={getattr(self, key)!r} must be {rule}")


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"num_images": 300, "num_videos": 24},
    "default": {},
}


def resolve_config(preset: str = "default", **overrides: Any) -> WorldConfig:
    """The preset's :class:`WorldConfig` with ``overrides`` applied, type-checked.

    Raises:
        ValueError: unknown preset or override key (the message lists the valid ones), or a value
            of the wrong type or out of range.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown world preset {preset!r}; valid: {', '.join(PRESETS)}")
    fields = {f.name: f for f in dataclasses.fields(WorldConfig)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown world parameter(s) {unknown}; valid: {', '.join(fields)}")
    values = {**PRESETS[preset], **overrides}
    for key, value in overrides.items():
        want = type(getattr(WorldConfig(), key))
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise ValueError(f"world parameter {key}={value!r} must be {want.__name__}")
        values[key] = float(value) if want is float else value
    return WorldConfig(**values)


# ----------------------------------------------------------------------------- rendering


@lru_cache(maxsize=16)
def _background(name: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8 background; read-only, copy before drawing."""
    if name in PLAIN_BACKGROUNDS:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = PLAIN_BACKGROUNDS[name]
    else:
        idx = np.arange(size)
        if name == "stripes":  # vertical bands, period size/7 (16 px at 112)
            band = (idx * 7 // size) % 2
            choice = np.broadcast_to(band[None, :], (size, size))
        elif name == "checkerboard":  # 8 x 8 cells
            cell = idx * 8 // size
            choice = (cell[:, None] + cell[None, :]) % 2
        else:
            raise ValueError(f"unknown background {name!r}; valid: {', '.join(BACKGROUNDS)}")
        img = np.asarray(TEXTURE_GREYS, np.uint8)[choice]
    img.flags.writeable = False
    return img


def _convex(u: np.ndarray, v: np.ndarray, corners: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Points (u, v) inside a convex polygon whose corners run clockwise on screen."""
    inside = np.ones(u.shape, bool)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        inside &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0
    return inside


def _star(u: np.ndarray, v: np.ndarray, inner: float = 0.5) -> np.ndarray:
    """Five-pointed star, one tip up: fold the angle into one half-spike, test one edge."""
    rho = np.hypot(u, v)
    spike = 2 * np.pi / 5
    a = np.mod(np.arctan2(v, u) + np.pi / 2, spike)  # 0 at a tip
    a = np.minimum(a, spike - a)  # in [0, spike/2]
    px, py = rho * np.cos(a), rho * np.sin(a)
    ix, iy = inner * np.cos(spike / 2), inner * np.sin(spike / 2)  # inner corner; the tip is (1, 0)
    return (ix - 1) * py - iy * (px - 1) >= 0


# Each mask takes coordinates in units of the object's radius, centred on the object.
SHAPE_MASKS = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85),
    "triangle": lambda u, v: _convex(u, v, ((0.0, -1.0), (0.95, 0.75), (-0.95, 0.75))),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "star": _star,
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0))
    ),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
}


def render(background: str, objects: list[dict], size: int) -> np.ndarray:
    """Draw ``objects`` (dicts with shape, colour, x, y, radius as frame fractions) in order.

    Returns:
        uint8 (size, size, 3) RGB.
    """
    img = _background(background, size).copy()
    for obj in objects:
        cx, cy, r = obj["x"] * size, obj["y"] * size, obj["radius"] * size
        x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)
        y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)
        u = (np.arange(x0, x1) + 0.5 - cx)[None, :] / r  # (1, w)
        v = (np.arange(y0, y1) + 0.5 - cy)[:, None] / r  # (h, 1)
        u, v = np.broadcast_arrays(u, v)  # (h, w)
        img[y0:y1, x0:x1][SHAPE_MASKS[obj["shape"]](u, v)] = COLOURS[obj["colour"]]
    return img


# ----------------------------------------------------------------------------- words for numbers


def position_word(x: float, y: float) -> str:
    """Name of the anchor nearest to (x, y)."""
    return min(POSITIONS, key=lambda p: (POSITIONS[p][0] - x) ** 2 + (POSITIONS[p][1] - y) ** 2)


def size_word(radius: float) -> str:
    """``small`` or ``large``, whichever radius is nearer (mid-growth switches half-way)."""
    return min(SIZES, key=lambda s: abs(SIZES[s] - radius))


def _object(shape: str, colour: str, x: float, y: float, radius: float) -> dict:
    """A drawable object with its words (size, position) next to its numbers."""
    return {
        "shape": shape,
        "colour": colour,
        "size": size_word(radius),
        "position": position_word(x, y),
        "x": round(float(x), 4),
        "y": round(float(y), 4),
        "radius": round(float(radius), 4),
    }


def _clamp_inside(v: float, radius: float) -> float:
    return min(max(v, radius + 0.01), 1.0 - radius - 0.01)


def _allowed_colours(background: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Object colours visible on ``background`` (a white circle on white would be invisible)."""
    return [c for c in COLOURS if c != background and c not in exclude]


# ----------------------------------------------------------------------------- captions


class _Draw:
    """Random choices for captions; without an rng, the canonical choice (first option, all parts)."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def maybe(self, p: float) -> bool:
        return True if self.rng is None else bool(self.rng.random() < p)

    def pick(self, options):
        return options[0] if self.rng is None else options[int(self.rng.integers(len(options)))]


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(obj: dict, d: _Draw, drop: tuple[str, ...] = ()) -> str:
    """'a small red circle'; size and colour are optional, attributes in ``drop`` never said."""
    words = []
    if "size" not in drop and d.maybe(0.6):
        words.append(obj["size"])
    if "colour" not in drop and d.maybe(0.9):
        words.append(obj["colour"])
    return _with_article(" ".join([*words, obj["shape"]]))


def _located(obj: dict, d: _Draw, p_position: float = 0.7) -> str:
    """Noun phrase plus (maybe) where it is: 'a red circle on the left'."""
    text = _noun_phrase(obj, d)
    if d.maybe(p_position):
        text += " " + d.pick(POSITION_PHRASES[obj["position"]])
    return text


def describe_scene(attributes: dict, rng: np.random.Generator | None = None) -> str:
    """A caption of a still scene (objects and background), never with motion words.

    Args:
        attributes: ``{"background": name, "objects": [{"shape", "colour", "size", "position"}]}``
            (the ``attributes`` of images.jsonl, or :func:`scene_at` of a video frame).
        rng: draws the template and which optional words to say; ``None`` says everything in the
            first template.
    """
    d = _Draw(rng)
    objects, bg = attributes["objects"], attributes["background"]
    bg_phrase = d.pick(BACKGROUND_PHRASES[bg]) if d.maybe(0.75) else ""
    if not objects:
        return "an empty scene " + BACKGROUND_PHRASES[bg][0]
    things = " and ".join(_located(o, d) for o in objects)
    there = "there is" if len(objects) == 1 else "there are"
    template = d.pick(
        ("{things} {bg}", there + " {things} {bg}", "a picture of {things} {bg}", "{bg}, {things}")
    )
    return " ".join(template.format(things=things, bg=bg_phrase).strip(" ,").split())


def _clause(ev: dict, d: _Draw, event: bool = True, appearance: bool = True) -> dict[str, str]:
    """Parts of one shot's description: subject, verb (present and gerund), where, background."""
    shown = ev["end"] if ev["type"] == "appears" else ev["start"]  # a state in which it is visible
    obj = {"shape": ev["shape"], **shown}
    changed = _CHANGED_ATTRIBUTES[ev["type"]]
    parts = {"subject": "", "verb": "", "gerund": "", "where": "", "bg": "", "static": ""}
    if appearance:
        parts["subject"] = _noun_phrase(obj, d, drop=changed)
        if "position" not in changed and d.maybe(0.5):
            parts["where"] = d.pick(POSITION_PHRASES[obj["position"]])
        if d.maybe(0.7):
            parts["bg"] = d.pick(BACKGROUND_PHRASES[ev["background"]])
        if ev["static"] and d.maybe(0.4):
            parts["static"] = "next to " + _located(ev["static"], d, 0.5)
    else:
        parts["subject"] = d.pick(_SOMETHING)
    if event:
        present, gerund = d.pick(EVENT_PHRASES[ev["type"]])
        colours = {"a": ev["start"]["colour"], "b": ev["end"]["colour"]}
        parts["verb"], parts["gerund"] = present.format(**colours), gerund.format(**colours)
    return parts


def _say(parts: dict[str, str], form: str = "verb") -> str:
    keys = ("subject", form, "where", "bg", "static")
    return " ".join(parts[k] for k in keys if parts[k])


_ORDER_TEMPLATES = {  # shots -> templates; the first three also read well with gerund clauses
    2: (
        "{a}, then {b}",
        "first {a}, then {b}",
        "{a} and then {b}",
        "{b} after {a}",
        "before {b}, {a}",
        "{a} before {b}",
    ),
    3: (
        "{a}, then {b}, then {c}",
        "first {a}, then {b}, and finally {c}",
        "{a}, then {b}, and at the end {c}",
        "{a}, after that {b}, and at the end {c}",
        "{a} before {b}, then {c}",
    ),
}


def _joined(clauses: list[str], d: _Draw, gerund: bool = False) -> str:
    """Shot clauses in their order, joined by one of the order templates."""
    if len(clauses) == 1:
        return clauses[0]
    templates = _ORDER_TEMPLATES[len(clauses)]
    template = d.pick(templates[:3] if gerund else templates)
    return template.format(**dict(zip("abc", clauses, strict=False)))


def _full_caption(events: list[dict], d: _Draw) -> str:
    if len(events) == 1:
        parts = _clause(events[0], d)
        template = d.pick(("{p}", "{g}", "there is {g}", "we see {g}"))
        return template.format(p=_say(parts), g=_say(parts, "gerund"))
    form = d.pick(("verb", "verb", "gerund"))
    return _joined([_say(_clause(ev, d), form) for ev in events], d, gerund=form == "gerund")


def _appearance_caption(events: list[dict], d: _Draw) -> tuple[str, bool]:
    """Every shot's look without its event; joined by 'and' (order-free) or 'then' (ordered)."""
    clauses = [_say(_clause(ev, d, event=False)) for ev in events]
    if len(clauses) > 1 and d.maybe(0.5):
        return ", then ".join(clauses), True
    return " and ".join(clauses), False


def _partial_caption(events: list[dict], d: _Draw) -> tuple[str, bool]:
    """One shot (or two neighbouring ones), its look only, its event only, or a background object."""
    j = int(d.pick(range(len(events))))
    ev = events[j]
    kinds = (
        ["look", "event_only"]
        + (["shot"] if len(events) > 1 else [])
        + (["static"] if ev["static"] else [])
    )
    kinds += ["pair"] if len(events) == 3 else []
    kind = d.pick(kinds)
    if kind == "look":
        return _say(_clause(ev, d, event=False)), False
    if kind == "event_only":
        return _say(_clause(ev, d, appearance=False)), True
    if kind == "shot":
        return _say(_clause(ev, d)), True
    if kind == "static":
        return _located(ev["static"], d) + " " + d.pick(BACKGROUND_PHRASES[ev["background"]]), False
    k = min(j, len(events) - 2)
    return _joined([_say(_clause(e, d)) for e in events[k : k + 2]], d), True


def video_captions(
    events: list[dict], n: int, rng: np.random.Generator
) -> list[tuple[str, list[str]]]:
    """About ``n`` distinct (caption, tags) for a video with these events, canonical one first.

    Shares: one canonical full description, ~35% paraphrased full descriptions, one or two
    appearance-only full descriptions (multi-shot videos), partial descriptions, and one or two
    about sound only. ``temporal`` marks captions with an event or an order between shots.
    """
    d = _Draw(rng)
    out: dict[str, list[str]] = {}

    def add(text: str, tags: list[str]) -> None:
        out.setdefault(text, tags)

    add(_full_caption(events, _Draw(None)), ["full", "temporal"])
    n_audio = 1 + int(rng.random() < 0.5)
    plan = [
        (round(0.35 * n), "paraphrase"),
        (1 + int(rng.random() < 0.5) if len(events) > 1 else 0, "look"),
    ]
    plan.append((n - n_audio - 1 - sum(k for k, _ in plan), "partial"))
    for count, kind in plan:
        target, tries = len(out) + count, 0
        while len(out) < target and tries < 20 * count:
            tries += 1
            if kind == "paraphrase":
                add(_full_caption(events, d), ["full", "paraphrase", "temporal"])
            elif kind == "look":
                text, ordered = _appearance_caption(events, d)
                add(text, ["full", "temporal"] if ordered else ["full"])
            else:
                text, temporal = _partial_caption(events, d)
                add(text, ["partial", "temporal"] if temporal else ["partial"])
    for text in rng.choice(AUDIO_CAPTIONS, size=n_audio, replace=False):
        add(str(text), ["audio"])
    return list(out.items())


# ----------------------------------------------------------------------------- images


def _place_objects(
    rng: np.random.Generator, background: str, count: int, jitter: float = 0.04
) -> list[dict]:
    """Up to ``count`` non-overlapping objects with distinct (shape, colour)."""
    objects: list[dict] = []
    for _ in range(20 * count):
        if len(objects) == count:
            break
        shape, colour = str(rng.choice(SHAPES)), str(rng.choice(_allowed_colours(background)))
        radius = SIZES[str(rng.choice(list(SIZES)))]
        ax, ay = POSITIONS[str(rng.choice(list(POSITIONS)))]
        x = _clamp_inside(ax + rng.uniform(-jitter, jitter), radius)
        y = _clamp_inside(ay + rng.uniform(-jitter, jitter), radius)
        clash = any(
            (o["shape"], o["colour"]) == (shape, colour)
            or o["position"] == position_word(x, y)
            or math.hypot(o["x"] - x, o["y"] - y) < o["radius"] + radius + 0.02
            for o in objects
        )
        if not clash:
            objects.append(_object(shape, colour, x, y, radius))
    return objects


def sample_image(rng: np.random.Generator, cfg: WorldConfig) -> dict:
    """Attributes of one still scene: background and one or two objects."""
    background = str(rng.choice(BACKGROUNDS))
    count = 2 if rng.random() < cfg.two_object_image_prob else 1
    return {"background": background, "objects": _place_objects(rng, background, count)}


# ----------------------------------------------------------------------------- videos


def _event_state(ev: dict, i: int) -> dict | None:
    """The shot's moving object at frame ``i`` (drawable dict), or None while invisible.

    ``event_frames`` [a, b): with b > a + 1 the state moves linearly from ``start`` at frame a to
    ``end`` at frame b - 1; with a == b it switches at frame a (frames >= a are in ``end``).
    """
    a, b = ev["event_frames"]
    t = min(max((i - a) / (b - 1 - a), 0.0), 1.0) if b > a + 1 else float(i >= a)
    s, e = ev["start"], ev["end"]
    state = s if t < 0.5 else e  # discrete attributes switch half-way
    if not state["visible"]:
        return None
    x, y, r = (s[k] + (e[k] - s[k]) * t for k in ("x", "y", "radius"))
    return _object(ev["shape"], state["colour"], x, y, r)


def scene_at(events: list[dict], frame_index: int) -> dict:
    """What frame ``frame_index`` shows: ``{"background", "shot", "objects": [...]}``.

    The objects carry the same keys as images.jsonl's attributes (words and numbers); the video
    renderer draws exactly this, so this is ground truth for any frame-level analysis.
    """
    for ev in events:
        start, end = ev["frames"]
        if start <= frame_index < end:
            objects = [o for o in (ev["static"], _event_state(ev, frame_index)) if o is not None]
            return {"background": ev["background"], "shot": ev["shot"], "objects": objects}
    raise IndexError(
        f"frame {frame_index} is outside the video's shots (0..{events[-1]['frames'][1] - 1})"
    )


def describe_frame(meta: dict, frame_index: int, rng: np.random.Generator | None = None) -> str:
    """Caption of one video frame from its annotation (an oracle frame captioner, no motion words)."""
    return describe_scene(scene_at(meta["events"], frame_index), rng)


def _shot_lengths(n: int, k: int, min_len: int, rng: np.random.Generator) -> list[int]:
    extra = n - k * min_len
    weights = rng.dirichlet(np.full(k, 2.0))
    lengths = [min_len + int(w * extra) for w in weights]
    lengths[-1] += n - sum(lengths)
    return lengths


def _num_shots(duration: float, cfg: WorldConfig, n: int, rng: np.random.Generator) -> int:
    """Longer videos tend to have more shots: about one per 4 s, at least one."""
    k = int(np.clip(np.round(duration / 4.0 + rng.normal(0.0, 0.5)), 1, cfg.max_shots))
    return max(1, min(k, n // round(cfg.min_shot_seconds * cfg.fps)))


def _static_object(rng: np.random.Generator, ev: dict) -> dict | None:
    """A small motionless object clear of the moving object's whole path, or None."""
    s, e = ev["start"], ev["end"]
    reach = max(s["radius"], e["radius"]) + SIZES["small"] + 0.03
    for _ in range(8):
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(_allowed_colours(ev["background"], (s["colour"], e["colour"]))))
        x, y = POSITIONS[str(rng.choice(list(POSITIONS)))]
        if (
            shape != ev["shape"]
            and _point_segment_distance((x, y), (s["x"], s["y"]), (e["x"], e["y"])) >= reach
        ):
            return _object(shape, colour, x, y, SIZES["small"])
    return None


def _point_segment_distance(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    ab = np.subtract(b, a)
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip(np.subtract(p, a) @ ab / denom, 0.0, 1.0))
    return float(np.hypot(*(np.add(a, t * ab) - np.asarray(p))))


def _sample_event(
    rng: np.random.Generator, cfg: WorldConfig, shot: int, frames: tuple[int, int], background: str
) -> dict:
    """One shot: background, a moving/changing object, maybe a static one, and when it changes."""
    kinds = list(_EVENT_KINDS)
    kind = kinds[rng.choice(len(kinds), p=[_EVENT_KINDS[k][0] for k in kinds])]
    etype = str(rng.choice(_EVENT_KINDS[kind][1]))
    shape, colour = str(rng.choice(SHAPES)), str(rng.choice(_allowed_colours(background)))
    size = str(rng.choice(list(SIZES)))
    r0 = r1 = SIZES[size]
    if etype in ("grows", "shrinks"):
        r0, r1 = (
            (SIZES["small"], SIZES["large"])
            if etype == "grows"
            else (SIZES["large"], SIZES["small"])
        )
    big = max(r0, r1)
    if etype in _MOVES:
        (x0, y0), (x1, y1) = (POSITIONS[p] for p in _MOVES[etype])
        wobble = rng.uniform(-0.06, 0.06)  # off the axis, the same at both ends
        dx, dy = (0.0, wobble) if y0 == y1 else (wobble, 0.0)
        x0, y0, x1, y1 = x0 + dx, y0 + dy, x1 + dx, y1 + dy
    else:
        ax, ay = POSITIONS[str(rng.choice(list(POSITIONS)))]
        x0 = x1 = _clamp_inside(ax + rng.uniform(-0.03, 0.03), big)
        y0 = y1 = _clamp_inside(ay + rng.uniform(-0.03, 0.03), big)
    colour_end = colour
    if etype == "changes_colour":
        colour_end = str(rng.choice(_allowed_colours(background, (colour,))))
    start, end = frames
    if etype in ("changes_colour", "appears", "disappears"):
        switch = start + int(round((end - start) * rng.uniform(0.35, 0.65)))
        event_frames = [switch, switch]
    else:
        event_frames = [start, end]

    def state(c: str, x: float, y: float, r: float, visible: bool) -> dict:
        obj = _object(shape, c, x, y, r)
        return {k: obj[k] for k in ("colour", "size", "position", "x", "y", "radius")} | {
            "visible": visible
        }

    ev = {
        "shot": shot,
        "type": etype,
        "frames": [start, end],
        "event_frames": event_frames,
        "background": background,
        "shape": shape,
        "colour": colour,
        "size": size_word(r0),
        "start": state(colour, x0, y0, r0, etype != "appears"),
        "end": state(colour_end, x1, y1, r1, etype != "disappears"),
        "static": None,
    }
    if rng.random() < cfg.static_object_prob:
        ev["static"] = _static_object(rng, ev)
    return ev


def sample_video(rng: np.random.Generator, cfg: WorldConfig) -> tuple[int, list[dict]]:
    """Number of frames and the shots' events of one original video."""
    lo, hi = math.log(cfg.min_duration), math.log(cfg.max_duration)
    n = max(1, int(round(math.exp(rng.uniform(lo, hi)) * cfg.fps)))
    k = _num_shots(n / cfg.fps, cfg, n, rng)
    min_len = min(round(cfg.min_shot_seconds * cfg.fps), n // k)
    events, start, previous = [], 0, None
    for shot, length in enumerate(_shot_lengths(n, k, min_len, rng)):
        background = str(rng.choice([b for b in BACKGROUNDS if b != previous]))
        events.append(_sample_event(rng, cfg, shot, (start, start + length), background))
        start, previous = start + length, background
    return n, events


def reverse_events(events: list[dict], num_frames: int) -> list[dict]:
    """The events of the same frames played backwards: shot order reversed, each event opposite.

    A frame range [a, b) maps to [n - b, n - a), so ``scene_at(reverse_events(ev, n), n - 1 - i)``
    describes the same picture as ``scene_at(ev, i)``.
    """
    n = num_frames
    out = []
    for shot, ev in enumerate(reversed(events)):
        (s, e), (a, b) = ev["frames"], ev["event_frames"]
        out.append(
            ev
            | {
                "shot": shot,
                "type": OPPOSITE[ev["type"]],
                "frames": [n - e, n - s],
                "event_frames": [n - b, n - a],
                "colour": ev["end"]["colour"],
                "size": ev["end"]["size"],
                "start": ev["end"],
                "end": ev["start"],
            }
        )
    return out


def render_video(num_frames: int, events: list[dict], size: int) -> list[np.ndarray]:
    """All frames, uint8 (size, size, 3) RGB each, drawn from :func:`scene_at`."""
    frames = []
    for i in range(num_frames):
        scene = scene_at(events, i)
        frames.append(render(scene["background"], scene["objects"], size))
    return frames


def encode_mp4(frames: list[np.ndarray], fps: int) -> bytes:
    """H.264 (libx264, yuv420p, pinned options) in an mp4 container, as bytes."""
    import av

    height, width = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return buf.getvalue()


# ----------------------------------------------------------------------------- the world


@dataclass
class _Video:
    video_id: str
    num_frames: int
    events: list[dict]
    caption_seed: int  # shared by a twin and its original, so their captions mirror each other
    reversed_of: str | None = None
    twin: str | None = None
    split: str = ""


def _plan_videos(cfg: WorldConfig, seed: int) -> list[_Video]:
    """Every video's content: originals in order, each twin right after its original."""
    n_orig = max(1, round(cfg.num_videos / (1 + cfg.twin_fraction)))
    n_twins = min(cfg.num_videos - n_orig, n_orig)
    twinned = set(
        np.random.default_rng([seed, 4]).choice(n_orig, size=n_twins, replace=False).tolist()
    )
    videos: list[_Video] = []
    for k in range(n_orig):
        n, events = sample_video(np.random.default_rng([seed, 1, k]), cfg)
        orig = _Video(f"vid_{len(videos):06d}", n, events, caption_seed=k)
        videos.append(orig)
        if k in twinned:
            twin = _Video(
                f"vid_{len(videos):06d}", n, reverse_events(events, n), k, reversed_of=orig.video_id
            )
            orig.twin, twin.twin = twin.video_id, orig.video_id
            videos.append(twin)
    return videos


def _assign_splits(videos: list[_Video], cfg: WorldConfig, seed: int) -> dict[str, list[str]]:
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


def _image_splits(n: int, cfg: WorldConfig, seed: int) -> list[str]:
    order = np.random.default_rng([seed, 5]).permutation(n)
    n_test, n_val = round(n * cfg.image_test_fraction), round(n * cfg.image_val_fraction)
    split = np.full(n, "train", dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return [str(s) for s in split]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _progress(iterable, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _write_images(out: Path, cfg: WorldConfig, seed: int) -> list[dict]:
    from PIL import Image

    splits = _image_splits(cfg.num_images, cfg, seed)
    rows = []
    for i in _progress(range(cfg.num_images), cfg.num_images, "world images"):
        rng = np.random.default_rng([seed, 0, i])
        attributes = sample_image(rng, cfg)
        pixels = render(attributes["background"], attributes["objects"], cfg.size)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        rel = f"images/img_{i:06d}.png"
        atomic_write_bytes(out / rel, buf.getvalue())
        rows.append(
            {
                "image_id": f"img_{i:06d}",
                "path": rel,
                "caption": describe_scene(attributes, rng),
                "split": splits[i],
                "attributes": attributes,
            }
        )
    return rows


def _write_videos(out: Path, videos: list[_Video], cfg: WorldConfig) -> None:
    """Render each original once; its twin is the same frame list reversed."""
    frames_of: dict[str, list[np.ndarray]] = {}
    for v in _progress(videos, len(videos), "world videos"):
        if v.reversed_of is None:
            frames = render_video(v.num_frames, v.events, cfg.size)
            if v.twin:
                frames_of[v.video_id] = frames
        else:
            frames = frames_of.pop(v.reversed_of)[::-1]
        atomic_write_bytes(out / "videos" / f"{v.video_id}.mp4", encode_mp4(frames, cfg.fps))


def _video_rows(videos: list[_Video], cfg: WorldConfig, seed: int) -> tuple[list[dict], list[dict]]:
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


def _write_msrvtt(out: Path, video_rows: list[dict], caption_rows: list[dict], seed: int) -> None:
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


_MARKER = ".vrlib-world"
_OUTPUTS = ("world.json", "splits.json", "images", "videos", "annotations", "msrvtt")


def _prepare(out: Path) -> None:
    """Empty the world's own outputs in ``out``; refuse a non-empty folder that is not a world."""
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
    out.mkdir(parents=True, exist_ok=True)
    for name in _OUTPUTS:  # world.json first: from here on the folder reads as unfinished
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    atomic_write_text(out / _MARKER, "made by vrlib.data.synthetic; world.json is written last\n")


def generate_world(
    out_dir: str | os.PathLike, preset: str = "default", seed: int = 0, **overrides: Any
) -> Path:
    """Generate the world into ``out_dir`` (replacing a previous world there) and return the path.

    Args:
        out_dir: folder to write; must be new, empty, or a previous (possibly unfinished) world.
        preset: ``"smoke"`` (~300 images, ~24 videos, seconds) or ``"default"`` (~6000 images,
            ~600 videos, minutes).
        seed: decides every random choice; the same seed gives identical files.
        **overrides: :class:`WorldConfig` fields to change (unknown keys raise ValueError).

    Returns:
        ``Path(out_dir)``, holding world.json, images/, videos/, annotations/, splits.json and
        msrvtt/ (layout in INTERFACES.md).
    """
    cfg = resolve_config(preset, **overrides)
    out = Path(out_dir).expanduser()
    _prepare(out)
    images = _write_images(out, cfg, seed)
    videos = _plan_videos(cfg, seed)
    splits = _assign_splits(videos, cfg, seed)
    _write_videos(out, videos, cfg)
    video_rows, caption_rows = _video_rows(videos, cfg, seed)
    atomic_write_text(out / "annotations" / "images.jsonl", _jsonl(images))
    atomic_write_text(out / "annotations" / "videos.jsonl", _jsonl(video_rows))
    atomic_write_text(out / "annotations" / "captions.jsonl", _jsonl(caption_rows))
    write_json(out / "splits.json", splits)
    _write_msrvtt(out, video_rows, caption_rows, seed)
    write_json(out / "world.json", _world_record(preset, seed, cfg, len(images), len(videos)))
    return out


def generator_sha() -> str:
    """SHA-256 of this module's source: a world records the generator that wrote it.

    Why: a world made by an older generator must never stand behind a report made with newer
    code. ``WORLD_VERSION`` relies on someone remembering to bump it; the source hash does not
    (any edit here regenerates worlds, which costs a couple of minutes for the default preset).
    """
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


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
            "options": X264_OPTIONS,
            "av": av.__version__,
        },
    }


def ensure_world(
    out_dir: str | os.PathLike, preset: str = "default", seed: int = 0, **overrides: Any
) -> Path:
    """Return ``out_dir`` with a complete world of this preset/seed, generating it if needed.

    Regenerates when ``world.json`` is missing (never generated, or interrupted: it is written
    last), unreadable, or records another preset, seed, version, parameters or generator source
    (:func:`generator_sha`).
    """
    cfg = resolve_config(preset, **overrides)
    out = Path(out_dir).expanduser()
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
    if isinstance(record, dict) and all(record.get(k) == v for k, v in wanted.items()):
        return out
    return generate_world(out, preset=preset, seed=seed, **overrides)
