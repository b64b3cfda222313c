"""Study 03, what the report shows of the runs: metrics rows, Figure 2's frames, captioner quality.

Apart from ``caption_runs`` because nothing here trains: it reads finished runs, the labels
(``TrainData.tables``), or the captioners and the world's held-out images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vrlib.studies.caption_runs import RunResult, TrainData
from vrlib.studies.caption_selection import CaptionSelectionParams
from vrlib.studies.toolkit import METRIC_KEYS, aggregate_seeds, rows_from_metrics


def seed_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """metrics.json rows: ``setting`` = rule, with ``captioners``, ``k``, ``seed``."""
    rows = []
    for run in runs:
        more = {"captioners": run.spec.label, "k": run.spec.k, "seed": run.seed}
        rows += rows_from_metrics(run.spec.rule, split, run.test, **more)
    return rows


def summary_rows(runs: Sequence[RunResult], split: str = "test") -> list[dict[str, Any]]:
    """Mean and std over seeds per (rule, captioners, k, split, direction)."""
    keys = ("setting", "captioners", "k", "split", "direction")
    metrics = [m for m in METRIC_KEYS if m != "n"]
    return aggregate_seeds(seed_rows(runs, split), keys=keys, metrics=metrics)


def figure_videos(data: TrainData, n: int, params: CaptionSelectionParams) -> list[dict[str, Any]]:
    """The first ``n`` training videos' captioned frames, captions, CLIPScores and which captions
    ``rand_top_k`` (K = ``combine_k``) keeps, for the Figure 2 analogue."""
    from vrlib.captions import select, stack
    from vrlib.data.video import read_frames

    labels = list(data.tables)
    sel = select(stack([data.tables[x] for x in labels]), "rand_top_k", params.combine_k)
    m = params.frames_per_video
    out = []
    for v, item in enumerate(data.dataset.videos[:n]):
        first = data.tables[labels[0]]
        frames = read_frames(
            str(item.path), first.frame_indices[v], size=params.caption_size or 96, resize="square"
        )  # (M, S, S, 3)
        chosen = {int(i) for i in sel.indices[v]}
        out.append(
            {
                "video_id": item.video_id,
                "frames": frames,  # (M, S, S, 3) uint8
                "captions": {x: data.tables[x].captions[v] for x in labels},
                "scores": {x: data.tables[x].scores[v] for x in labels},
                "selected": {
                    x: [i for i in range(m) if j * m + i in chosen] for j, x in enumerate(labels)
                },
            }
        )
    return out


def caption_quality(params: CaptionSelectionParams, captioners: dict[str, Any], limit: int):
    """Each captioner's quality on ``limit`` of the world's held-out images (``vrlib.captions.
    quality.evaluate_captioner``); empty on real data, which has no record to check, or limit 0."""
    from vrlib.captions.quality import evaluate_captioner

    if params.data.root is not None or limit == 0:
        return []
    world = params.data.resolve_root()
    rows = []
    for label, c in captioners.items():
        q = evaluate_captioner(c, world, "test", limit=limit)
        rows.append({"captioner": f"{label} ({c.name})", **q})
    return rows
