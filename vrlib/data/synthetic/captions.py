"""Captions: phrase tables, templates and paraphrases for images, frames and videos.

Why: every visual word a video caption uses is one the image-text expert saw on images, and
each caption carries tags (full, paraphrase, partial, audio, temporal) so studies can select
queries by kind. Captions are drawn from the same events the renderer draws.
"""

from __future__ import annotations

import numpy as np

from vrlib.data.synthetic.config import MOVES, PLAIN_BACKGROUNDS
from vrlib.data.synthetic.scenes import scene_at

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
    **{t: ("position",) for t in MOVES},
    "grows": ("size",),
    "shrinks": ("size",),
    "changes_colour": ("colour",),
    "appears": (),
    "disappears": (),
}
# Captions tagged ``audio``, like MSR-VTT's about sound: nothing in the frames can match them.
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
    ``audio`` ones about sound. ``temporal`` marks captions with an event or an order between shots.
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


def motion_caption(events: list[dict], rng: np.random.Generator) -> str:
    """The caption of a still that shows these events (a motion trail or a before->after strip,
    ``vrlib.data.synthetic.motion``), drawn like one of a video's captions.

    Why: web photos of motion come with captions that use the words of time ("a ball flies to
    the left", "before and after"); these teach the expert every word a video caption uses.
    Full descriptions (two in three), partial ones, an appearance-only one for strips of several
    shots; and in one in ten a sentence about sound (as in `audio` captions) is appended, as alt-text often carries words
    the picture cannot show.
    """
    d = _Draw(rng)
    roll = rng.random()
    if roll < 0.65 or (roll < 0.8 and len(events) == 1):
        text = _full_caption(events, d)
    elif roll < 0.8:
        text, _ = _appearance_caption(events, d)
    else:
        text, _ = _partial_caption(events, d)
    if rng.random() < 0.1:
        text += " and " + AUDIO_CAPTIONS[int(rng.integers(len(AUDIO_CAPTIONS)))]
    return text


def describe_frame(meta: dict, frame_index: int, rng: np.random.Generator | None = None) -> str:
    """Caption of one video frame from its annotation (an oracle frame captioner, no motion words)."""
    return describe_scene(scene_at(meta["events"], frame_index), rng)
