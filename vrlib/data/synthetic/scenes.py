"""Scene sampling: what a still image shows and what happens, shot by shot, in a video.

Why: a video's content is a list of events (one per shot) drawn from the seed; every frame's
picture is a pure function of it (:func:`scene_at`), so the renderer draws and the captions
describe exactly the same thing. :func:`reverse_events` gives a reversed twin's events.
"""

from __future__ import annotations

import math

import numpy as np

from vrlib.data.synthetic.config import (
    BACKGROUNDS,
    COLOURS,
    MOVES,
    OPPOSITE,
    POSITIONS,
    SHAPES,
    SIZES,
    WorldConfig,
)

_EVENT_KINDS = {  # kind -> (probability, event types)
    "move": (0.35, ("moves_left", "moves_right", "moves_up", "moves_down")),
    "size": (0.25, ("grows", "shrinks")),
    "colour": (0.2, ("changes_colour",)),
    "visibility": (0.2, ("appears", "disappears")),
}


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


def _static_object(
    rng: np.random.Generator, ev: dict, avoid: frozenset[tuple[str, str]] = frozenset()
) -> dict | None:
    """A small motionless object clear of the moving object's whole path, or None."""
    s, e = ev["start"], ev["end"]
    reach = max(s["radius"], e["radius"]) + SIZES["small"] + 0.03
    for _ in range(8):
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(_allowed_colours(ev["background"], (s["colour"], e["colour"]))))
        x, y = POSITIONS[str(rng.choice(list(POSITIONS)))]
        if (
            shape != ev["shape"]
            and (shape, colour) not in avoid
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


def sample_event(
    rng: np.random.Generator,
    cfg: WorldConfig,
    shot: int,
    frames: tuple[int, int],
    background: str,
    avoid: frozenset[tuple[str, str]] = frozenset(),
) -> dict:
    """One shot: background, a moving/changing object, maybe a static one, and when it changes.

    ``avoid``: (shape, colour) combinations no object of the shot may have (the concepts held
    out of training videos); empty, it draws exactly what it always drew.
    """
    kinds = list(_EVENT_KINDS)
    kind = kinds[rng.choice(len(kinds), p=[_EVENT_KINDS[k][0] for k in kinds])]
    etype = str(rng.choice(_EVENT_KINDS[kind][1]))
    shape, colour = str(rng.choice(SHAPES)), str(rng.choice(_allowed_colours(background)))
    for _ in range(100 if (shape, colour) in avoid else 0):  # bounded: never spins
        if (shape, colour) not in avoid:
            break
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
    if etype in MOVES:
        (x0, y0), (x1, y1) = (POSITIONS[p] for p in MOVES[etype])
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
        for _ in range(100 if (shape, colour_end) in avoid else 0):
            if (shape, colour_end) not in avoid:
                break
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
        ev["static"] = _static_object(rng, ev, avoid)
    return ev


def sample_video(
    rng: np.random.Generator, cfg: WorldConfig, avoid: frozenset[tuple[str, str]] = frozenset()
) -> tuple[int, list[dict]]:
    """Number of frames and the shots' events of one original video (none of whose objects is a
    (shape, colour) in ``avoid``)."""
    lo, hi = math.log(cfg.min_duration), math.log(cfg.max_duration)
    n = max(1, int(round(math.exp(rng.uniform(lo, hi)) * cfg.fps)))
    k = _num_shots(n / cfg.fps, cfg, n, rng)
    min_len = min(round(cfg.min_shot_seconds * cfg.fps), n // k)
    events, start, previous = [], 0, None
    for shot, length in enumerate(_shot_lengths(n, k, min_len, rng)):
        background = str(rng.choice([b for b in BACKGROUNDS if b != previous]))
        events.append(sample_event(rng, cfg, shot, (start, start + length), background, avoid))
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


def concepts(events: list[dict]) -> set[tuple[str, str]]:
    """Every (shape, colour) an object of these events shows, at any time."""
    out = set()
    for ev in events:
        out.update((ev["shape"], ev[k]["colour"]) for k in ("start", "end"))
        if ev["static"]:
            out.add((ev["static"]["shape"], ev["static"]["colour"]))
    return out
