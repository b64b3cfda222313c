"""The result card: one evaluation's numbers with everything needed to trust and compare them.

A card (JSON for tools, Markdown for people) holds the metrics of both directions with their
cluster-bootstrap intervals, the protocol spelled out (split, queries, V2T rule, medians, ties,
frames, aggregation, DSL), the dataset fingerprint (annotation hashes, videos found and
excluded), the encoder fingerprint and the workbench version.

Comparing cards (:func:`compare_cards`) refuses cards whose protocols differ and names the
difference: a number is only comparable with one counted the same way on the same data.
Dual-softmax re-scoring is never the headline: its numbers sit in ``dsl_metrics``, flagged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_FORMAT = "vrlib-result-card-v1"
HEADLINE = ("R@1", "R@5", "R@10", "MdR", "MnR")
# Protocol and data choices that must agree before two cards' numbers are compared.
_COMPARED = ("preset", "ties", "multi", "v2t", "median", "sampling", "aggregation", "dsl")
_COMPARED_DATA = ("name", "split", "annotations_sha256", "videos_evaluated", "queries")


class ProtocolMismatchError(ValueError):
    """Cards computed under different protocols or on different data (the message names how)."""


@dataclass
class ResultCard:
    """One evaluation: metrics, protocol, data and model fingerprints (see the module docstring)."""

    metrics: dict[str, dict[str, Any]]
    protocol: dict[str, Any]
    dataset: dict[str, Any]
    model: dict[str, Any]
    vrlib_version: str
    dsl_metrics: dict[str, dict[str, Any]] | None = None
    warnings: list[str] = field(default_factory=list)
    format: str = CARD_FORMAT

    # ----------------------------------------------------------------- persistence

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str, where: str = "card") -> ResultCard:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise ValueError(f"{where}: not a vrlib result card (format {CARD_FORMAT!r} expected)")
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"{where}: damaged result card ({e})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResultCard:
        return cls.from_json(Path(path).read_text(), str(path))

    def stem(self) -> str:
        """A file name for the card: dataset-split-model-preset."""
        parts = [
            self.dataset["name"],
            self.dataset["split"],
            self.model["name"],
            self.protocol["preset"],
        ]
        return "-".join(re.sub(r"[/\\: ]", "_", str(p)) for p in parts)  # a file name anywhere

    def save(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``; returns both paths."""
        from vrlib.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / f"{self.stem()}.json", out / f"{self.stem()}.md"
        atomic_write_text(json_path, self.to_json() + "\n")
        atomic_write_text(md_path, self.to_markdown())
        return json_path, md_path

    # ----------------------------------------------------------------- reading

    def headline(self, direction: str) -> dict[str, Any]:
        """The metrics of ``direction`` the preset reports (others are shown as extras)."""
        return {m: self.metrics[direction][m] for m in HEADLINE if m in self.metrics[direction]}

    def to_markdown(self) -> str:
        d, p, m = self.dataset, self.protocol, self.model
        title = f"# {m['name']} on {d['name']} {d['split']} — protocol `{p['preset']}`"
        lines = [title, ""]
        lines += [f"> **warning**: {w}" for w in self.warnings] + ([""] if self.warnings else [])
        lines += _metric_table(self.metrics, p.get("reports", HEADLINE))
        lines += ["", "Intervals: 95% cluster bootstrap over videos (each video drawn with all its "
                  "captions; the gallery fixed). Metrics the released code does not report are "
                  "marked *.", ""]  # fmt: skip
        if self.dsl_metrics:
            lines += ["## Dual softmax (DSL) — transductive, not the headline", ""]
            lines += _metric_table(self.dsl_metrics, p.get("reports", HEADLINE)) + [""]
        lines += ["## Protocol", ""]
        lines += [
            f"- follows: {p['follows']}",
            f"- split: {d['split']} ({d['query_rule']}), reader split `{d['reader_split']}`",
            f"- captions per video: {d['captions_per_video']['min']}–{d['captions_per_video']['max']}",
            f"- V2T: `{p['v2t']}`; median: T2V `{p['median']['t2v']}`, V2T `{p['median']['v2t']}`",
            f"- ties: `{p['ties']}` (expected rank of a random tie-break); the released code: "
            f"{p['released_ties']}",
            f"- frames: {_kv(p['sampling'])}; aggregation: {_kv(p['aggregation'])}",
            f"- several embeddings per video: `{p['multi']}`; DSL: {'on (flagged)' if p['dsl'] else 'off'}",
        ]
        lines += [f"- note: {n}" for n in p.get("notes", [])]
        lines += ["", "## Data", ""]
        lines += [
            f"- root: `{d['root']}`",
            f"- videos: {d['videos_evaluated']} evaluated of {d['videos_listed']} listed"
            + (f" (protocol: {d['expected_videos']})" if d.get("expected_videos") else ""),
            f"- queries: {d['queries']}"
            + (f" (protocol: {d['expected_queries']})" if d.get("expected_queries") else ""),
            f"- excluded (missing or undecodable): {d['excluded']}",
        ]
        lines += [f"  - {x}" for x in d.get("excluded_videos", [])]
        lines += [
            f"- `{name}`: sha256 {sha[:16]}…" for name, sha in d.get("annotations", {}).items()
        ]
        lines += ["", "## Model", ""]
        lines += [f"- {k}: `{v}`" for k, v in m.items() if v is not None]
        lines += ["", f"vrlib {self.vrlib_version}, card format {self.format}", ""]
        return "\n".join(lines)


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items() if v not in ({}, None))


def _metric_table(metrics: dict[str, dict[str, Any]], reports: Any) -> list[str]:
    head = (
        "| direction | "
        + " | ".join(f"{m}{'' if m in reports else '*'}" for m in HEADLINE)
        + " | n |"
    )
    lines = [head, "|" + "---|" * (len(HEADLINE) + 2)]
    for direction in ("t2v", "v2t"):
        row = metrics[direction]
        cells = []
        for m in HEADLINE:
            ci = row.get("CI", {}).get(m)
            cells.append(f"{row[m]:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""))
        lines.append(f"| {direction} | " + " | ".join(cells) + f" | {row['n']} |")
    return lines


# --------------------------------------------------------------------------- comparing


def comparison_key(card: ResultCard) -> dict[str, Any]:
    """What must agree between comparable cards: protocol choices and the data evaluated."""
    key = {f"protocol.{k}": card.protocol.get(k) for k in _COMPARED}
    data = dict(card.dataset)
    data["annotations_sha256"] = data.get("annotations")
    key.update({f"dataset.{k}": data.get(k) for k in _COMPARED_DATA})
    return key


def protocol_differences(a: ResultCard, b: ResultCard) -> list[str]:
    """``["protocol.v2t: all_captions vs caption_groups", ...]``; empty when comparable."""
    ka, kb = comparison_key(a), comparison_key(b)
    return [f"{k}: {_short(ka[k])} vs {_short(kb[k])}" for k in ka if ka[k] != kb[k]]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare_cards(cards: list[ResultCard], names: list[str] | None = None) -> str:
    """A Markdown table of the cards' headline numbers, both directions.

    Raises:
        ProtocolMismatchError: a card's protocol or data differs from the first card's; the
            message names the card and every difference.
    """
    if not cards:
        raise ValueError("no cards to compare")
    names = names or [c.model["name"] for c in cards]
    for name, card in zip(names[1:], cards[1:], strict=True):
        diff = protocol_differences(cards[0], card)
        if diff:
            raise ProtocolMismatchError(
                f"{name} is not comparable with {names[0]}:\n  " + "\n  ".join(diff)
            )
    cols = [f"T2V {m}" for m in HEADLINE] + [f"V2T {m}" for m in HEADLINE]
    lines = [
        f"protocol `{cards[0].protocol['preset']}` on {cards[0].dataset['name']} "
        f"{cards[0].dataset['split']}",
        "",
        "| card | " + " | ".join(cols) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for name, card in zip(names, cards, strict=True):
        vals = [card.metrics[d][m] for d in ("t2v", "v2t") for m in HEADLINE]
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)
