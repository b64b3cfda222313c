"""Result cards for the heads the studies train, so the leaderboard lists them beside zero-shot.

Why: ``vrlib eval`` scores a model it can load; a study's trained head (CLIP4Clip's seqTransf,
CLIP2Video's TDB, ...) lives only inside the study's run. Its test similarity is scored here by
the same :func:`vrlib.evaluation.run.score` under a named preset (``clip4clip`` by default), so
its card carries the same metrics, intervals and fingerprints as any other, and
``reports/leaderboard.md`` (:mod:`vrlib.evaluation.leaderboard`) lists it. The card says what
the preset did not choose: the study's frame sampling and the head that pooled the frames.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vrlib.evaluation.benchmarks import annotation_hashes
from vrlib.evaluation.card import ResultCard
from vrlib.evaluation.run import counted_record, score

STUDY_PROTOCOL = "clip4clip"  # the preset the studies' cards are scored under
CARD_INTERVALS = 200  # bootstrap resamples per card (the study's own claims use their own)


def study_card(
    sim: torch.Tensor | np.ndarray,
    caption_to_video: np.ndarray,
    *,
    dataset: str,
    split: str,
    root: str | os.PathLike,
    study: str,
    setting: str,
    seed: int,
    sampling: dict[str, Any],
    protocol: str = STUDY_PROTOCOL,
    intervals: int = CARD_INTERVALS,
) -> ResultCard:
    """The card of one trained (or untrained) head on the split it was tested on.

    Args:
        sim: ``(C, V)`` test similarity; ``caption_to_video`` (C,) each row's video column.
        dataset, split, root: the dataset's name, the test split and its folder (whose annotation
            files are hashed onto the card).
        study, setting, seed: which run it is (the card's model name is ``study:setting``).
        sampling: the study's frame sampling (the card records it instead of the preset's).
    """
    sim = sim.detach().float().cpu().numpy() if isinstance(sim, torch.Tensor) else np.asarray(sim)
    c2v = np.asarray(caption_to_video)
    record = counted_record(
        dataset, split, sim.shape[1], c2v, annotation_hashes(Path(root)), str(root)
    )
    card = score(
        sim, c2v, protocol, intervals=intervals, seed=seed, dataset=record,
        model={"name": f"{study}:{setting}", "pretrained": None, "kind": "trained head",
               "seed": seed, "fingerprint": None},
    )  # fmt: skip
    card.protocol["sampling"] = dict(sampling)
    card.protocol["aggregation"] = {"method": f"the {setting} head", "options": {}}
    return card


def renamed(card: ResultCard | None, study: str, setting: str) -> ResultCard | None:
    """A copy of a shared run's card under another setting's name (runs that train the same
    thing are trained once and reported under every setting that names them)."""
    if card is None:
        return None
    card = copy.deepcopy(card)
    card.model["name"] = f"{study}:{setting}"
    card.protocol["aggregation"]["method"] = f"the {setting} head"
    return card


def with_encoder(card: ResultCard, encoder_record: dict[str, Any]) -> ResultCard:
    """``card`` with the frozen encoder the head sat on (its weights' tag or path and hash)."""
    card.model["pretrained"] = encoder_record.get("pretrained")
    card.model["encoder"] = encoder_record
    card.model["fingerprint"] = encoder_record.get("fingerprint")
    return card


def write_study_cards(cards: Iterable[ResultCard], out_dir: str | os.PathLike) -> list[Path]:
    """Write each card's JSON (and Markdown) into ``out_dir``; one card per model name.

    Raises:
        ValueError: two cards with the same model name (the second would overwrite the first).
    """
    cards = list(cards)
    names = [c.model["name"] for c in cards]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"one card per head: {', '.join(twice)} given more than once")
    return [card.save(out_dir)[0] for card in cards]


def write_run_cards(
    named_cards: Iterable[tuple[str, ResultCard | None]],
    encoder: Any,
    model: str,
    pretrained: str | None,
    out_dir: str | os.PathLike,
) -> list[Path]:
    """A study's cards into ``out_dir``: of each run name the first card (runs come seed by
    seed, so the first seed's), each with the encoder (``model``, ``pretrained``) it sat on."""
    from vrlib.evaluation.models import model_record

    record = model_record(encoder, model, pretrained)
    first: dict[str, ResultCard] = {}
    for name, card in named_cards:
        if card is not None:
            first.setdefault(name, card)
    return write_study_cards([with_encoder(c, record) for c in first.values()], out_dir)
