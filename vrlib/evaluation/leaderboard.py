"""``reports/leaderboard.md`` rebuilt from a folder of result cards, published numbers beside.

Why from cards: a card carries its protocol and data fingerprint, so the table can group only
numbers that were counted the same way (one section per dataset, split, preset and pool of videos
and queries) and can say when a published figure was computed differently. Published figures come from
:mod:`vrlib.papers` (transcribed from the papers, with the protocol that produced each) and are
marked ``≠`` with the difference (:func:`vrlib.papers.protocol_differences`) when their protocol is
not the section's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vrlib.evaluation.card import HEADLINE, ResultCard
from vrlib.papers import PAPER_FIGURES, protocol_differences

# Which published figures were measured on which benchmark split (by the row's source or split).
_PUBLISHED = {
    ("msrvtt", "1k-A"): lambda r: (
        "1k-A" in r["source"] or r["split"] in ("test-one-caption", "msrvtt-test")
    ),
    ("msrvtt", "full"): lambda r: r["split"] == "test-all-captions",
    ("msvd", "test"): lambda r: r["split"] == "msvd-test",
}


Folders = str | os.PathLike | Sequence[str | os.PathLike]  # one folder of cards, or several


def _folder_list(folders: Folders) -> list[str | os.PathLike]:
    return [folders] if isinstance(folders, str | os.PathLike) else list(folders)


def load_cards(folders: Folders) -> list[ResultCard]:
    """Every ``*.json`` result card in ``folders`` (each sorted by name); other JSON files are named."""
    cards = []
    for folder in _folder_list(folders):
        for path in sorted(Path(folder).glob("*.json")):
            try:
                cards.append(ResultCard.load(path))
            except ValueError as e:
                raise ValueError(
                    f"{path}: not a result card ({e}); keep only cards in {folder}"
                ) from None
    return cards


def build_leaderboard(folders: Folders, shown_as: str | None = None) -> str:
    """The Markdown leaderboard of the cards in ``folders`` (see the module docstring);
    ``shown_as`` is how the command line that rebuilds it names the folders."""
    cards = load_cards(folders)
    if shown_as is None:
        shown_as = " ".join(str(f) for f in _folder_list(folders))
    sections: dict[tuple[str, str, str, int, int], list[ResultCard]] = {}
    for card in cards:  # one section per pool scored: cards on other videos or queries apart
        d = card.dataset
        key = (d["name"], d["split"], card.protocol["preset"], d["videos_evaluated"], d["queries"])
        sections.setdefault(key, []).append(card)
    lines = [
        "# Leaderboard",
        "",
        f"Built from {len(cards)} result cards by `python -m vrlib eval --leaderboard {shown_as}`; one "
        "section per dataset, split, protocol preset and pool of videos and queries. Ours first (best T2V R@1 on top; "
        "*partial* = not the whole protocol split; a trained head's row names its study and setting, "
        "with its frame sampling and pooling on its card), then the published figures of "
        "`vrlib/papers.py`, marked ≠ where their protocol differs from the section's.",
        "",
    ]
    for (dataset, split, preset, _, _), group in sorted(sections.items()):
        lines += _section(dataset, split, preset, group)
    return "\n".join(lines)


def _section(dataset: str, split: str, preset: str, cards: list[ResultCard]) -> list[str]:
    cols = [f"T2V {m}" for m in HEADLINE] + [f"V2T {m}" for m in HEADLINE]
    d = cards[0].dataset
    lines = [
        f"## {dataset} {split} — `{preset}` ({d['videos_evaluated']} videos, {d['queries']} queries)",
        "",
        "| model | weights | frames | " + " | ".join(cols) + " | note |",
    ]
    lines.append("|" + "---|" * (len(cols) + 4))
    for card in sorted(cards, key=lambda c: -c.metrics["t2v"]["R@1"]):
        vals = " | ".join(f"{card.metrics[d][m]:.1f}" for d in ("t2v", "v2t") for m in HEADLINE)
        notes = ["partial"] if not card.dataset.get("complete", True) else []
        notes += ["DSL on the card, not here"] if card.dsl_metrics else []
        note = ", ".join(notes)
        lines.append(
            f"| {card.model['name']} | {_weights(card.model)} | "
            f"{_frames(card.protocol.get('sampling', {}))} | {vals} | {note} |"
        )
    published = _published(dataset, split, cards[0].protocol)
    if published:
        lines += [
            "",
            "Published:",
            "",
            "| source | setting | direction | R@1 | R@5 | R@10 | MdR | MnR | protocol |",
        ]
        lines.append("|" + "---|" * 9)
        lines += published
    return [*lines, ""]


def _weights(model: dict[str, Any]) -> str:
    """The weights a row ran with; a study's head also names the encoder it sat on."""
    encoder = (model.get("encoder") or {}).get("name")
    return " ".join(str(x) for x in (encoder, model.get("pretrained")) if x)


def _frames(sampling: dict[str, Any]) -> str:
    """The card's frame sampling in a few words (``uniform, n 12``): rows of one section may
    differ in it, since a study's heads keep their own sampling."""
    return ", ".join(
        str(v) if k == "strategy" else f"{k} {v}" for k, v in sampling.items() if v is not None
    )


def _published(dataset: str, split: str, protocol: dict[str, Any]) -> list[str]:
    chooses = _PUBLISHED.get((dataset, split))
    if chooses is None:
        return []
    rows = []
    for study_rows in PAPER_FIGURES.values():
        for row in filter(chooses, study_rows):
            ours = {
                "v2t_used": protocol["v2t"],
                "median_used": protocol["median"][row["direction"]],
            }
            diff = protocol_differences(row, ours)
            cells = " | ".join(f"{row[m]:.1f}" if m in row else "–" for m in HEADLINE)
            mark = "≠ " + "; ".join(diff) if diff else "same"
            rows.append(
                f"| {row['source']} | {row['setting']} | {row['direction']} | {cells} | {mark} |"
            )
    return rows


def write_leaderboard(
    folders: Folders, out: str | os.PathLike, shown_as: str | None = None
) -> Path:
    """Write :func:`build_leaderboard` to ``out`` (e.g. ``reports/leaderboard.md``)."""
    from vrlib.io import atomic_write_text

    return atomic_write_text(out, build_leaderboard(folders, shown_as) + "\n")
