"""The papers' own numbers, as data, so reports can put them beside ours.

Why here: a report must show "the paper's figure, what we measured, and the same on real data"
side by side (DESIGN.md); typing the paper's figures into each notebook would copy them around.
Numbers are transcribed from the text versions in ``../shared/papers/`` (the table each comes
from is named); the OCR of Portillo-Quintero's Table 1 drops decimal points, restored here.
Rows use the same ``setting`` names as our metrics.json rows.

Each row also records the ``protocol`` that produced the figure, in ``vrlib.metrics``' option
names, so a report can tell whether our row was computed the same way (``protocol_differences``):

- ``multi``: how several embeddings per video were scored. Portillo-Quintero's text (section 3.4)
  describes min-rank, but the notebook that produced its k-means figures takes the max over
  centroids: ``max_sim``. Those figures therefore sit on our ``kmeans-k*-max_sim`` rows.
- ``v2t``: ``caption_groups`` for CLIP4Clip/CLIP2Video code and the Portillo-Quintero notebook
  (``tensor_video_to_text_sim``); with one caption per video every V2T protocol gives the same
  number, recorded as ``"any"``.
- ``median``: ``mean_of_middle`` (np.median) where the figure comes from ``compute_metrics`` or is
  a half-integer (Portillo-Quintero's MdR 3.5); CLIP4Clip/CLIP2Video's multi-caption T2V, and
  Portillo-Quintero's all-captions T2V (the notebook's ``tensor_text_to_video_metrics``), use
  ``torch.median`` (``lower_middle``).
"""

from __future__ import annotations

from typing import Any

_PQ_T1 = "Portillo-Quintero 2021, Table 1 (MSR-VTT validation, 1,000 pairs, T2V)"
_PQ_T2 = "Portillo-Quintero 2021, Table 2 (MSR-VTT, CLIP zero-shot)"
_F_T1 = "Fang 2021 (CLIP2Video), Table 1 (MSR-VTT 1k-A)"
_F_T2 = "Fang 2021 (CLIP2Video), Table 2 (MSR-VTT 1k-A, TDB+TAB-base)"

_B_T4 = "Bain 2021 (Frozen in Time), Table 4 (MSR-VTT 1k-A; pretrained on WebVid2M, finetuned)"
_B_T2 = "Bain 2021 (Frozen in Time), Table 2 (MSR-VTT 1k-A; 4 frames, pretrained then finetuned)"
_B_T3 = "Bain 2021 (Frozen in Time), Table 3 (MSR-VTT 1k-A zero-shot; trained on WebVid2M)"
_B_A4 = "Bain 2021 (Frozen in Time), Table A.4 (MSR-VTT 1k-A; 4=>8 frames, CC3M+WebVid2M)"

_METRICS = ("R@1", "R@5", "R@10", "MdR", "MnR", "StdR")


# What produced each paper's figures (see the module docstring); "any": every option gives the
# same number there (one caption per video, or one embedding per video).
_PQ_NOTEBOOK = {"multi": "max_sim", "median": "mean_of_middle"}
_PQ_NOTE = (
    "Portillo-Quintero's k-means figures come from its notebook, which scores a video by its best "
    "centroid (max_sim); the paper's text (3.4) describes min-rank, which no published figure used"
)
_ONE_CAPTION = {"v2t": "any", "median": "mean_of_middle"}  # compute_metrics on a V x V matrix


def _row(
    source: str,
    setting: str,
    direction: str,
    values: tuple,
    split: str = "",
    protocol: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One paper row; ``values`` follow ``_METRICS`` order, None where the paper gives none."""
    row = {"source": source, "setting": setting, "direction": direction, "split": split}
    row.update({m: v for m, v in zip(_METRICS, values, strict=False) if v is not None})
    row["protocol"] = dict(protocol or {})
    return row


_ZERO_SHOT = [
    _row(_PQ_T1, "single", "t2v", (24.9, 46.1, 56.9, 7.0, 64.61, 149.21), "val", _PQ_NOTEBOOK),
    _row(_PQ_T1, "mean", "t2v", (35.4, 58.0, 67.2, 3.0, 39.81, 111.43), "val", _PQ_NOTEBOOK),
    *[
        _row(_PQ_T1, f"kmeans-k{k}-max_sim", "t2v", v, "val", _PQ_NOTEBOOK)
        for k, v in {
            2: (34.3, 57.8, 66.5, 3.0, 40.23, 112.85),
            3: (34.4, 57.7, 66.6, 3.0, 39.77, 110.69),
            4: (33.7, 58.4, 66.9, 3.0, 37.98, 107.53),
            5: (34.4, 57.6, 66.1, 3.0, 38.44, 108.02),
            6: (34.9, 58.4, 67.6, 3.5, 37.44, 108.34),
            7: (35.3, 58.1, 67.5, 4.0, 38.33, 107.88),
            8: (33.9, 57.7, 67.9, 3.0, 38.23, 107.32),
            9: (33.9, 57.2, 67.1, 3.0, 37.87, 108.23),
            10: (35.0, 57.8, 68.0, 3.0, 37.26, 107.34),
        }.items()
    ],
    # Table 2: mean aggregation on the test sets; 1k-A = one caption per video, Full = all captions.
    _row(_PQ_T2, "mean", "t2v", (31.2, 53.7, 64.2, 4.0), "test-one-caption", _ONE_CAPTION),
    _row(_PQ_T2, "mean", "v2t", (27.2, 51.7, 62.6, 5.0), "test-one-caption", _ONE_CAPTION),
    # all captions, T2V: the notebook's tensor_text_to_video_metrics takes torch.median (lower middle)
    _row(
        _PQ_T2,
        "mean",
        "t2v",
        (21.4, 41.1, 50.4, 10.0),
        "test-all-captions",
        {**_PQ_NOTEBOOK, "median": "lower_middle"},
    ),
    _row(
        _PQ_T2,
        "mean",
        "v2t",
        (40.3, 69.7, 79.2, 2.0),
        "test-all-captions",
        {**_PQ_NOTEBOOK, "v2t": "caption_groups"},
    ),
]

# CLIP2Video Table 1 gives MnR where we keep StdR: values are (R@1, R@5, R@10, MdR, MnR).
_TEMPORAL_T1 = {
    "meanP": ((43.1, 70.4, 80.8, 2.0, 16.2), (43.1, 70.5, 81.2, 2.0, 12.4)),
    "seqTransf": ((44.5, 71.4, 81.6, 2.0, 15.3), (42.7, 70.9, 80.6, 2.0, 11.6)),
    "tdb-sub": ((44.2, 70.8, 80.7, 2.0, 15.7), (41.9, 70.1, 80.6, 2.0, 11.7)),
    "tdb-mlp": ((44.7, 70.9, 80.9, 2.0, 14.6), (42.7, 70.8, 81.4, 2.0, 11.3)),
    "tdb-all": ((44.3, 71.3, 82.1, 2.0, 15.6), (41.8, 69.9, 80.8, 2.0, 11.9)),
    "tdb": ((45.1, 72.4, 80.7, 2.0, 14.6), (41.9, 71.1, 80.3, 2.0, 10.8)),
    "tdb+tab-base": ((45.1, 72.7, 80.9, 2.0, 15.1), (42.4, 70.8, 81.9, 2.0, 10.0)),
    "tdb+tab-temporal": ((44.1, 72.7, 82.2, 2.0, 14.2), (43.1, 71.4, 82.1, 2.0, 10.2)),
    "tdb+tab-transformer": ((44.6, 72.5, 82.0, 2.0, 13.7), (42.3, 71.9, 82.9, 2.0, 9.8)),
    "tdb+tab-tdb": ((45.6, 72.6, 81.7, 2.0, 14.6), (43.3, 72.3, 82.1, 2.0, 10.2)),
}
_TEMPORAL_T2 = {
    "tab-k4": ((44.6, 72.9, 82.2, 2.0, 13.7), (43.7, 72.5, 82.8, 2.0, 10.3)),
    "tab-k5": _TEMPORAL_T1["tdb+tab-base"],
    "tab-k6": ((44.6, 71.8, 81.3, 2.0, 14.4), (44.7, 72.8, 82.5, 2.0, 10.2)),
    "tab-k7": ((44.1, 72.8, 81.3, 2.0, 15.1), (42.3, 71.2, 82.0, 2.0, 10.4)),
    "tab-w0.4": ((44.1, 72.9, 82.5, 2.0, 14.4), (43.7, 72.8, 81.2, 2.0, 10.1)),
    "tab-w0.5": _TEMPORAL_T1["tdb+tab-base"],
    "tab-w0.6": ((44.9, 72.1, 82.7, 2.0, 14.4), (43.3, 72.6, 81.9, 2.0, 10.3)),
    "tab-w0.7": ((43.7, 72.2, 81.7, 2.0, 14.1), (41.8, 70.7, 82.4, 2.0, 10.4)),
}


def _temporal_rows(table: dict, source: str) -> list[dict[str, Any]]:
    """CLIP2Video on MSR-VTT 1k-A: one caption per video, ``compute_metrics`` both ways."""
    return [
        _row(source, setting, direction, values, "test", _ONE_CAPTION)
        for setting, pair in table.items()
        for direction, values in zip(("t2v", "v2t"), pair, strict=True)
    ]


def _frozen_rows() -> list[dict[str, Any]]:
    """Frozen in Time's tables give R@1, R@10 and MdR; Table 4 also the pretraining hours (PTT).

    MSR-VTT 1k-A with one caption per video, T2V, ``np.median`` (its ``t2v_metrics``).

    Table 4's "PT 1 / FT 4" row (24.9, 67.1, 5.0, 16.2 h) has no setting here: the world has no
    separate fine-tuning stage (see vrlib.studies.curriculum.runs).
    """
    table4 = {  # setting: (R@1, R@10, MdR, PTT hours); PT frames = FT frames except as noted
        "frames-1": (18.8, 56.6, 7.0, 16.2),
        "frames-4": (26.0, 64.9, 5.0, 45.6),
        "frames-1=>4": (26.6, 65.5, 5.0, 22.1),
        "frames-8": (25.4, 67.3, 4.0, 98.0),
        "frames-1=>4=>8": (27.4, 67.3, 4.0, 36.0),
    }
    rows = []
    for setting, (r1, r10, mdr, hours) in table4.items():
        row = _row(_B_T4, setting, "t2v", (r1, None, r10, mdr), "test", _ONE_CAPTION)
        rows.append({**row, "PTT_h": hours})
    others = (
        (_B_T2, "images-only", (24.5, 62.7, 5.0)),  # CC3M
        (_B_T2, "videos-only", (26.0, 64.9, 5.0)),  # WebVid2M
        (_B_T2, "joint", (27.3, 68.1, 4.0)),  # CC3M + WebVid2M
        (_B_T3, "block-timesformer", (13.0, 40.2, 18.0)),
        (_B_T3, "block-frozen", (14.6, 42.7, 16.0)),
        (_B_A4, "expand-zeros", (30.7, 68.3, 4.0)),
        (_B_A4, "expand-nearest", (29.4, 69.5, 4.0)),
        (_B_A4, "expand-bilinear", (28.3, 69.9, 4.0)),
    )
    rows += [
        _row(src, name, "t2v", (r1, None, r10, mdr), "test", _ONE_CAPTION)
        for src, name, (r1, r10, mdr) in others
    ]
    return rows


_V_T1 = "Ventura 2024, Table 1 (captioning models, T2V)"
_V_T2 = "Ventura 2024, Table 2 (caption selection, T2V)"
_V_T3 = "Ventura 2024, Table 3 (combining captioners, T2V)"
# Ventura's rows: (rule, captioners, k, source) -> ((MSR-VTT R@1, R@5), (MSVD R@1, R@5)). Test
# sets with one caption per video as T2V queries; CLIP ViT-B/16 fine-tuned on the captions.
_VENTURA = {
    ("zero_shot", "none", 0, _V_T1): ((32.80, 55.73), (39.39, 64.55)),
    ("rand_top_k", "C", 2, _V_T1): ((34.71, 59.76), (40.61, 68.94)),
    ("rand_top_k", "B", 2, _V_T1): ((35.81, 60.56), (41.11, 69.09)),
    ("rand_m", "C", 1, _V_T2): ((31.79, 55.23), (39.75, 68.48)),
    ("middle_1", "C", 1, _V_T2): ((34.10, 56.94), (38.89, 66.97)),
    ("top_1", "C", 1, _V_T2): ((34.31, 57.95), (40.45, 68.64)),
    ("rand_top_k", "C", 3, _V_T2): ((33.10, 58.95), (40.45, 68.38)),
    ("rand_m", "B", 1, _V_T2): ((34.61, 60.46), (40.45, 68.74)),
    ("middle_1", "B", 1, _V_T2): ((33.20, 57.75), (40.10, 69.85)),
    ("top_1", "B", 1, _V_T2): ((34.91, 60.26), (41.82, 68.33)),
    ("rand_top_k", "B", 3, _V_T2): ((35.61, 59.46), (40.91, 68.18)),
    ("rand_top_k", "C+B", 2, _V_T3): ((36.52, 61.47), (41.72, 70.00)),
}


def _ventura_rows() -> list[dict[str, Any]]:
    """Ventura's figures; ``captioners`` and ``k`` beside the rule name, as our rows have them.

    Their ``split`` names the dataset (``msrvtt-test``, ``msvd-test``), never ours (``test``): the
    figures are on real data and only sit beside our embedded-world numbers in the notebook.
    Table 1's ClipCap and BLIP rows are Table 2's Rand(Top 2) (the paper says so); Table 3 repeats
    them for C and B. The pooled top 2 of 20 is described as "poorer" without a figure.
    """
    rows = []
    for (rule, captioners, k, source), per_set in _VENTURA.items():
        for split, (r1, r5) in zip(("msrvtt-test", "msvd-test"), per_set, strict=True):
            row = _row(source, rule, "t2v", (r1, r5), split, {"v2t": "any"})
            rows.append({**row, "captioners": captioners, "k": k})
    return rows


PAPER_FIGURES: dict[str, list[dict[str, Any]]] = {
    "caption_selection": _ventura_rows(),
    "curriculum": _frozen_rows(),
    "zero_shot_aggregation": _ZERO_SHOT,
    "temporal_ablation": _temporal_rows(_TEMPORAL_T1, _F_T1) + _temporal_rows(_TEMPORAL_T2, _F_T2),
}


PAPER_NOTES: dict[str, list[str]] = {"zero_shot_aggregation": [_PQ_NOTE]}


def paper_rows(study: str) -> list[dict[str, Any]]:
    """The paper's rows for ``study`` (empty when the study has no numeric table, e.g. the browser)."""
    return [{**r, "protocol": dict(r["protocol"])} for r in PAPER_FIGURES.get(study, [])]


# Our metrics.json rows are computed with one protocol per run (``protocol``: ``v2t_used``,
# ``median_used``); a k-means row names its ``multi`` in the setting. Runs written before these
# options existed used what are now the defaults.
_OURS_DEFAULTS = {"v2t": "all_captions", "median": "mean_of_middle"}


def protocol_differences(paper_row: dict[str, Any], our_protocol: dict[str, Any]) -> list[str]:
    """How the paper's figure was computed differently from ours, e.g. ``["v2t: paper
    caption_groups, ours all_captions"]``; empty when the row compares like with like.

    Args:
        paper_row: one of :func:`paper_rows`.
        our_protocol: the ``protocol`` block of our metrics.json (``vrlib.metrics.protocol``).
    """
    ours = {
        key: our_protocol.get(f"{key}_used", default) for key, default in _OURS_DEFAULTS.items()
    }
    relevant = ("v2t", "median") if paper_row["direction"] == "v2t" else ("median",)
    out = []
    for key in relevant:
        theirs = paper_row.get("protocol", {}).get(key)
        if theirs not in (None, "any") and theirs != ours[key]:
            out.append(f"{key}: paper {theirs}, ours {ours[key]}")
    return out
