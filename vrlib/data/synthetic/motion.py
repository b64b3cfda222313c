"""Still images of motion and change: the words of time, taught the way photos teach them.

Why: CLIP never saw a video, yet it knows "moves to the left", "grows" and "then" from photos of
motion (trails, blur) and before/after pictures with their captions. A world whose stills never
show change leaves those words as random embeddings, so no video model built on the expert can
read a caption's direction (issue 18 measured 24% unseen test tokens). With
``motion_image_share`` > 0 the world adds, to the train images only, stills of this kind:

- **trail** (a single move): the object drawn solid where it ends and as fading ghosts along the
  way it came, an onion-skin picture, so the faint end is where it started;
- **strip** (any event, or two or three in order): panels in reading order, one row per shot and
  two columns (before, after), separated by a border colour no scene uses.

Every motion still comes with its **reversed twin** (:func:`reverse_motion_image`): the same
scene with its events played backwards (``scenes.reverse_events``), so its caption says the
opposite direction ("moves to the right" for "moves to the left", "shrinks" for "grows") and the
shots in the other order. A twin can be told from its still only by the direction the picture
shows, the way a reversed video is told from its original; with ``hard_negatives`` the expert's
batches hold both (``vrlib.data.minimal_pairs``).

Their events are drawn by the videos' own sampler (``scenes.sample_event``) and their captions by
the videos' caption code (``captions.motion_caption``), so every word of every video caption
template occurs in the image captions. Held-out images stay plain stills: the expert's held-out
R@K and its ceiling (``vrlib.data.caption_ceiling``) keep measuring what they always did.
"""

from __future__ import annotations

import numpy as np

from vrlib.data.synthetic.config import BACKGROUNDS, MOVES, WorldConfig
from vrlib.data.synthetic.render import draw, render
from vrlib.data.synthetic.scenes import reverse_events, sample_event, scene_at

SHOT_FRAMES = 10  # each shot of a motion still spans this many notional frames
_BORDER = (70, 96, 120)  # between panels: a slate blue that is no object or background colour
_GHOST_FRAMES = (0, 2, 4, 6)  # trail ghosts, faint to strong; the object is solid at the end
_GHOST_ALPHA = (0.2, 0.35, 0.5, 0.7)


def sample_motion_image(rng: np.random.Generator, cfg: WorldConfig) -> dict:
    """The attributes of one motion still: ``{"background", "objects", "motion"}``.

    ``background`` and ``objects`` are what the last panel ends with (so code that reads a still's
    attributes keeps working); ``motion`` holds the ``style`` (trail or strip) and the shots'
    ``events`` (the schema of a video's ``meta["events"]``).
    """
    shots = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
    events, previous = [], None
    for shot in range(shots):
        background = str(rng.choice([b for b in BACKGROUNDS if b != previous]))
        frames = (shot * SHOT_FRAMES, (shot + 1) * SHOT_FRAMES)
        events.append(sample_event(rng, cfg, shot, frames, background))
        previous = background
    trail = shots == 1 and events[0]["type"] in MOVES and rng.random() < 0.7
    last = scene_at(events, shots * SHOT_FRAMES - 1)
    return {
        "background": last["background"],
        "objects": last["objects"],
        "motion": {"style": "trail" if trail else "strip", "events": events},
    }


def reverse_motion_image(attributes: dict) -> dict:
    """The attributes of a motion still's reversed twin: the same style and scenes, the events
    played backwards (a trail then starts where the still's ends; a strip's rows come in the
    other order, each with its before and after swapped)."""
    motion = attributes["motion"]
    n = len(motion["events"]) * SHOT_FRAMES
    events = reverse_events(motion["events"], n)
    last = scene_at(events, n - 1)
    return {
        "background": last["background"],
        "objects": last["objects"],
        "motion": {"style": motion["style"], "events": events},
    }


def render_motion_image(attributes: dict, size: int) -> np.ndarray:
    """The pixels of a motion still (uint8 (size, size, 3) RGB)."""
    motion = attributes["motion"]
    if motion["style"] == "trail":
        return _trail(motion["events"][0], size)
    return _strip(motion["events"], size)


def _trail(ev: dict, size: int) -> np.ndarray:
    end = scene_at([ev], SHOT_FRAMES - 1)
    img = render(ev["background"], [], size)
    for frame, alpha in zip(_GHOST_FRAMES, _GHOST_ALPHA, strict=True):
        moving = scene_at([ev], frame)["objects"][-1]
        draw(img, moving, alpha)
    for obj in end["objects"]:
        draw(img, obj)
    return img


def _strip(events: list[dict], size: int) -> np.ndarray:
    """Rows = shots, columns = (before, after); square panels centred in their cells."""
    rows = len(events)
    cell_h, cell_w = size // rows, size // 2
    side = min(cell_h, cell_w) - 2
    img = np.empty((size, size, 3), np.uint8)
    img[:] = _BORDER
    for r, ev in enumerate(events):
        start, end = ev["frames"]
        for c, frame in enumerate((start, end - 1)):
            scene = scene_at(events, frame)
            panel = render(scene["background"], scene["objects"], side)
            top = r * cell_h + (cell_h - side) // 2
            left = c * cell_w + (cell_w - side) // 2
            img[top : top + side, left : left + side] = panel
    return img
