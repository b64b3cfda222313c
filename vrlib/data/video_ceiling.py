"""The best text-to-video retrieval any model could reach on a world's videos, given the captions.

Why: a study's R@1 means little without the headroom above it. Video captions are ambiguous on
purpose ("something moves left", "a red circle on a white background", "music is playing"), so
even a model that sees every frame perfectly cannot tell which of the videos a caption fits it was
written for. ``vrlib.data.caption_ceiling`` computes this for the expert's still images; this
module does it for videos.

The ideal model scores a (caption, video) pair by the probability that one caption draw of the
world's generator (``synthetic.video_captions``) writes that text for that video's events, and
ranks videos by it (the Bayes-optimal text->video ranking, videos equally likely a priori). A
draw is a mixture of the generator's kinds with the shares its plan gives them (the canonical
description, paraphrased full descriptions, appearance-only ones for several shots, partial
ones, `audio` ones). Each kind is a template over per-shot clauses, and each clause's distribution
is enumerated by replaying the generator's own code with scripted draws
(``caption_ceiling.enumerate_outputs``), so the likelihood follows the generator and cannot drift
from it. Two simplifications, both small: a video's captions are drawn without repeats (the
generator drops duplicates), and the kind counts are their expected shares. Ties (every video
ties on an `audio` caption) are broken at random: ``ties="mean"``. Nuisances and bad frames do
not enter: the ceiling is about what captions leave unsaid, not about pixels.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vrlib.data.caption_ceiling import enumerate_outputs
from vrlib.data.synthetic import AUDIO_CAPTIONS
from vrlib.data.synthetic import captions as gen

_SLOT = "\x00{}\x00"  # placeholder for clause i in an enumerated template


@dataclass
class ShotTables:
    """One shot's clause distributions (text -> probability), as the generator draws them."""

    verb: dict[str, float]  # full clause, present tense
    gerund: dict[str, float]  # full clause, gerund
    look: dict[str, float]  # appearance only
    event: dict[str, float]  # event only ("something moves left")
    static: dict[str, float]  # the background object, with the background


def shot_tables(ev: dict) -> ShotTables:
    """Enumerate every clause the generator can write for one shot's event."""

    def full(d):
        parts = gen._clause(ev, gen._Draw(d))
        return gen._say(parts), gen._say(parts, "gerund")

    both = enumerate_outputs(full)
    verb: dict[str, float] = {}
    gerund: dict[str, float] = {}
    for (v, g), p in both.items():
        verb[v] = verb.get(v, 0.0) + p
        gerund[g] = gerund.get(g, 0.0) + p
    static = {}
    if ev["static"]:
        static = enumerate_outputs(
            lambda d: (
                gen._located(ev["static"], gen._Draw(d))
                + " "
                + gen._Draw(d).pick(gen.BACKGROUND_PHRASES[ev["background"]])
            )
        )
    return ShotTables(
        verb=verb,
        gerund=gerund,
        look=enumerate_outputs(lambda d: gen._say(gen._clause(ev, gen._Draw(d), event=False))),
        event=enumerate_outputs(
            lambda d: gen._say(gen._clause(ev, gen._Draw(d), appearance=False))
        ),
        static=static,
    )


def _templates(shots: int, gerund: bool) -> list[tuple[re.Pattern, float]]:
    """The order templates ``_joined`` picks from, as regexes with one group per clause."""
    slots = [_SLOT.format(i) for i in range(shots)]
    out = enumerate_outputs(lambda d: gen._joined(slots, gen._Draw(d), gerund))
    patterns = []
    for text, p in out.items():
        regex = re.escape(text)
        for i in range(shots):
            regex = regex.replace(re.escape(_SLOT.format(i)), f"(?P<c{i}>.+?)")
        patterns.append((re.compile(regex), p))
    return patterns


_TEMPLATES = {
    (k, g): _templates(k, g) for k in (2, 3) for g in (False, True)
}  # fmt: skip


@lru_cache(maxsize=200_000)
def _parses(caption: str, shots: int, gerund_templates: bool) -> tuple[tuple[float, tuple], ...]:
    """Each order template that fits ``caption``: its probability and the clauses it holds."""
    out = []
    for pattern, p in _TEMPLATES[(shots, gerund_templates)]:
        m = pattern.fullmatch(caption)
        if m:
            out.append((p, tuple(m.group(f"c{i}") for i in range(shots))))
    return tuple(out)


def _joined_likelihood(
    caption: str, tables: list[ShotTables], form: str, gerund_templates: bool
) -> float:
    """P(caption) of ``_joined`` over these shots' clauses in ``form``."""
    total = 0.0
    for p, clauses in _parses(caption, len(tables), gerund_templates):
        for clause, t in zip(clauses, tables, strict=True):
            p *= getattr(t, form).get(clause, 0.0)
        total += p
    return total


def _full(caption: str, tables: list[ShotTables]) -> float:
    """``_full_caption``'s probability of writing ``caption``."""
    if len(tables) == 1:
        t, total = tables[0], 0.0
        total += t.verb.get(caption, 0.0) + t.gerund.get(caption, 0.0)
        for prefix in ("there is ", "we see "):
            if caption.startswith(prefix):
                total += t.gerund.get(caption[len(prefix) :], 0.0)
        return total / 4
    verb = _joined_likelihood(caption, tables, "verb", False)
    return 2 / 3 * verb + 1 / 3 * _joined_likelihood(caption, tables, "gerund", True)


def _look(caption: str, tables: list[ShotTables]) -> float:
    """``_appearance_caption``'s probability (several shots only)."""
    total = 0.0
    for sep in (", then ", " and "):
        parts = caption.split(sep)
        if len(parts) == len(tables):
            total += 0.5 * float(
                np.prod([t.look.get(s, 0.0) for s, t in zip(parts, tables, strict=True)])
            )
    return total


def _partial(caption: str, tables: list[ShotTables]) -> float:
    """``_partial_caption``'s probability: a shot drawn uniformly, then a kind uniformly."""
    k, total = len(tables), 0.0
    for j, t in enumerate(tables):
        kinds = {"look": t.look.get(caption, 0.0), "event_only": t.event.get(caption, 0.0)}
        if k > 1:
            kinds["shot"] = t.verb.get(caption, 0.0)
        if t.static:
            kinds["static"] = t.static.get(caption, 0.0)
        if k == 3:
            k0 = min(j, k - 2)
            kinds["pair"] = _joined_likelihood(caption, tables[k0 : k0 + 2], "verb", False)
        total += sum(kinds.values()) / len(kinds) / k
    return total


def caption_likelihood(
    caption: str,
    events: list[dict],
    tables: list[ShotTables] | None = None,
    n: int = 20,
    canonical: str | None = None,
) -> float:
    """Probability that one caption draw of ``video_captions(events, n, ...)`` is ``caption``
    (``tables``: the shots' :func:`shot_tables`, and ``canonical``: the video's canonical
    caption, computed when not given)."""
    shots = len(events)
    tables = tables if tables is not None else [shot_tables(ev) for ev in events]
    if canonical is None:
        canonical = gen._full_caption(events, gen._Draw(None))
    w = {"canonical": 1 / n, "full": round(0.35 * n) / n, "audio": 1.5 / n}
    w["look"] = 1.5 / n if shots > 1 else 0.0
    w["partial"] = 1.0 - sum(w.values())
    p = w["canonical"] * (caption == canonical) + w["full"] * _full(caption, tables)
    p += w["partial"] * _partial(caption, tables) + w["audio"] * (caption in AUDIO_CAPTIONS) / len(
        AUDIO_CAPTIONS
    )
    if shots > 1:
        p += w["look"] * _look(caption, tables)
    return float(p)


def likelihood_matrix(captions: list[str], videos: list[list[dict]], n: int = 20) -> np.ndarray:
    """``P(caption | video)``: float64 ``(len(captions), len(videos))`` of events lists."""
    tables = [[shot_tables(ev) for ev in events] for events in videos]
    out = np.zeros((len(captions), len(videos)))
    for j, (events, t) in enumerate(zip(videos, tables, strict=True)):
        canonical = gen._full_caption(events, gen._Draw(None))
        for i, c in enumerate(captions):
            out[i, j] = caption_likelihood(c, events, t, n, canonical)
    return out


def ideal_video_recall(
    captions: list[str], caption_to_video: list[int], videos: list[list[dict]], n: int = 20
) -> dict[str, Any]:
    """Expected text->video R@1/5/10 of the ideal model (``t2v_R@1``, ...), and how many captions
    no video's generator could have written (0 unless the generator changed under this module)."""
    from vrlib.metrics import evaluate

    like = likelihood_matrix(captions, videos, n)
    own = like[np.arange(len(captions)), np.asarray(caption_to_video)]
    result = evaluate(like, np.asarray(caption_to_video), ties="mean")
    out: dict[str, Any] = {f"t2v_R@{k}": result["t2v"][f"R@{k}"] for k in (1, 5, 10)}
    out.update(num_captions=len(captions), num_videos=len(videos), impossible=int((own == 0).sum()))
    return out


def video_ceiling(world_dir: str | os.PathLike, split: str = "test") -> dict[str, Any]:
    """:func:`ideal_video_recall` on one video split of a synthetic world."""
    world_dir = Path(world_dir)
    videos = _jsonl(world_dir / "annotations" / "videos.jsonl")
    videos = [v for v in videos if v.get("split") == split]
    if not videos:
        raise ValueError(f"{world_dir}/annotations/videos.jsonl: no videos in split {split!r}")
    index = {v["video_id"]: i for i, v in enumerate(videos)}
    rows = [
        c for c in _jsonl(world_dir / "annotations" / "captions.jsonl") if c["video_id"] in index
    ]
    params = json.loads((world_dir / "world.json").read_text())["params"]
    return ideal_video_recall(
        [c["caption"] for c in rows],
        [index[c["video_id"]] for c in rows],
        [v["meta"]["events"] for v in videos],
        params["captions_per_video"],
    )


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
