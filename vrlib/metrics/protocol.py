"""The metric options, their valid names, the protocol record written into metrics.json, and the
named presets of the papers' released evaluation code.

Why a module of its own: every option of ``evaluate`` and the text that says what it counts
live together, so a new option is one name in one tuple plus one entry in ``PROTOCOL``; a preset
(:data:`PRESETS`) fixes every option at once, the way one paper's released code counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

TIES = ("optimistic", "pessimistic", "mean")
MULTI = ("max_sim", "min_rank")
V2T = ("all_captions", "caption_groups")
MEDIANS = ("mean_of_middle", "lower_middle")
DIRECTIONS = ("t2v", "v2t")
RECALL_AT = (1, 5, 10)
DSL_TEMPERATURE = 0.01
BLOCK_ELEMENTS = 1 << 22  # default chunk: about 4M scores (16 MB in float32) per block


PROTOCOL: dict[str, Any] = {
    "name": "vrlib-retrieval-v2",  # v2: v2t and median options; ties="mean" is an expectation
    "sim": "captions x videos; (C, V) or (C, V, k) for k embeddings per video",
    "rank": "1 + #negatives scoring above the query's best positive (see ties); 1-based",
    "ties": {
        "optimistic": "negatives with an equal score do not count",
        "pessimistic": "negatives with an equal score count",
        "mean": (
            "uniformly random tie-break in expectation: rank = optimistic + ties / 2; R@K = mean "
            "of P(rank <= K) = clamp((K - r + 1) / (t + 1), 0, 1)"
        ),
    },
    "t2v": "query = caption, candidates = all V videos; n = C",
    "v2t": {
        "all_captions": (
            "query = video, candidates = all C captions; a video's rank is the best rank of any of "
            "its captions (Collaborative Experts, frozen-in-time, CLIP_benchmark); n = V"
        ),
        "caption_groups": (
            "query = video, candidates = the V caption groups, each scored by its best caption "
            "(CLIP4Clip, CLIP2Video, Portillo-Quintero notebook); n = V"
        ),
    },
    "median": {
        "mean_of_middle": "np.median: mean of the two middle ranks when n is even",
        "lower_middle": "torch.median: the lower of the two middle ranks",
    },
    "multi": {
        "max_sim": "a video scores by its best embedding (max over k), ranked once",
        "min_rank": (
            "ranked k times, run j with every video's j-th embedding; each query keeps its "
            "minimum rank (Portillo-Quintero et al. 2021, 3.4); v2t likewise per run"
        ),
    },
    "dsl": (
        "off unless dsl=True: sim * softmax(sim / dsl_temperature over captions, per video) "
        "(CAMoE dual softmax at inference), one re-scored matrix for both directions"
    ),
    "metrics": "R@K percent of queries with rank <= K; MdR median; MnR mean; StdR population std",
    # the settings of one call; evaluate() fills these in
    "ties_used": "optimistic",
    "multi_used": "max_sim",
    "v2t_used": "all_captions",
    "median_used": "mean_of_middle",
    "dsl_used": False,
}


def protocol(
    multi: str = "max_sim",
    ties: str = "optimistic",
    dsl: bool = False,
    dsl_temperature: float = DSL_TEMPERATURE,
    v2t: str = "all_captions",
    median: str = "mean_of_middle",
) -> dict[str, Any]:
    """``PROTOCOL`` with the settings of one evaluation filled in (what goes into metrics.json)."""
    out = dict(PROTOCOL, ties_used=ties, multi_used=multi, v2t_used=v2t, median_used=median)
    out["dsl_used"] = bool(dsl)
    if dsl:
        out["dsl_temperature"] = float(dsl_temperature)
    return out


# --------------------------------------------------------------------------- named presets


@dataclass(frozen=True)
class Preset:
    """A paper's evaluation protocol, named: the frames it samples and how it counts a hit.

    Why: "R@1 on MSR-VTT" hides a dozen choices (split, captions per video, V2T rule, median,
    ties, frames); two numbers are comparable only when every one of them agrees. A preset writes
    them down once, equal to the released code on tie-free matrices (tests/test_metrics_reference.py),
    and the result card prints them.

    Ties are the one place a preset deliberately departs from the released code: every preset uses
    ``ties="mean"`` (the expectation of a random tie-break, so tied scores earn neither luck nor a
    penalty) and ``released_ties`` says what the released code would report instead.

    Attributes:
        name: the preset's name in :data:`PRESETS`.
        follows: the released code whose counting rules the preset reproduces.
        v2t: ``"all_captions"`` or ``"caption_groups"`` (see :func:`vrlib.metrics.evaluate`).
        median: ``{"t2v": rule, "v2t": rule}`` when videos have several captions.
        median_one_caption: the rules when every video has exactly one caption (CLIP4Clip then
            calls ``compute_metrics`` both ways, ``np.median``).
        multi: how several embeddings per video are scored (``max_sim`` / ``min_rank``).
        reports: the metrics the released code reports (the card shows the others as extras).
        sampling: frames, as :class:`vrlib.data.sampling.SamplingConfig` keyword arguments.
        aggregation: frame features -> video embedding(s): ``{"method": ..., "options": {...}}``.
        released_ties: how the released code counts tied scores, for the card.
        notes: anything else a reader needs to compare a number with the paper's.
    """

    name: str
    follows: str
    v2t: str
    median: dict[str, str]
    median_one_caption: dict[str, str]
    multi: str
    reports: tuple[str, ...]
    sampling: dict[str, Any]
    aggregation: dict[str, Any]
    released_ties: str
    ties: str = "mean"
    notes: tuple[str, ...] = ()

    def medians(self, one_caption: bool) -> dict[str, str]:
        """The median rule of each direction, for data with one or several captions per video."""
        return dict(self.median_one_caption if one_caption else self.median)

    def record(self, one_caption: bool, dsl: bool = False) -> dict[str, Any]:
        """Every choice of this preset as plain data (what the card stores and compares)."""
        return {
            "preset": self.name,
            "follows": self.follows,
            "ties": self.ties,
            "multi": self.multi,
            "v2t": self.v2t,
            "median": self.medians(one_caption),
            "reports": list(self.reports),
            "sampling": dict(self.sampling),
            "aggregation": {
                k: (dict(v) if isinstance(v, dict) else v) for k, v in self.aggregation.items()
            },
            "dsl": bool(dsl),
            "released_ties": self.released_ties,
            "notes": list(self.notes),
        }


_MEAN = {"method": "mean", "options": {}}
_NP_MEDIAN = {"t2v": "mean_of_middle", "v2t": "mean_of_middle"}
_CLIP4CLIP_MULTI = {"t2v": "lower_middle", "v2t": "mean_of_middle"}
_COMPUTE_METRICS_TIES = (
    "compute_metrics (np.where on the sorted row) lists a query once per tied score, so a query "
    "tied with t negatives is counted t + 1 times, at every tied position; "
    "tensor_text_to_video_metrics (double argsort) ranks ties by storage order"
)

PRESETS: dict[str, Preset] = {
    "clip4clip": Preset(
        name="clip4clip",
        follows="CLIP4Clip metrics.py (= CLIP2Video): compute_metrics, tensor_text_to_video_metrics, "
        "tensor_video_to_text_sim",
        v2t="caption_groups",
        median=_CLIP4CLIP_MULTI,
        median_one_caption=_NP_MEDIAN,
        multi="max_sim",
        reports=("R@1", "R@5", "R@10", "MdR", "MnR"),
        sampling={"strategy": "clip4clip", "n": 12, "target_fps": 1.0},
        aggregation=_MEAN,
        released_ties=_COMPUTE_METRICS_TIES,
        notes=(
            "several captions per video: T2V median is torch.median (lower middle), V2T ranks "
            "caption groups (max over a video's captions) with np.median",
            "mean pooling of frame embeddings is CLIP4Clip's meanP without training",
        ),
    ),
    "frozen": Preset(
        name="frozen",
        follows="Frozen in Time model/metric.py = Collaborative Experts t2v_metrics, v2t_metrics",
        v2t="all_captions",
        median=_NP_MEDIAN,
        median_one_caption=_NP_MEDIAN,
        multi="max_sim",
        reports=("R@1", "R@5", "R@10", "MdR", "MnR"),
        sampling={"strategy": "uniform", "n": 4},
        aggregation=_MEAN,
        released_ties=(
            "break_ties='averaging': a tied query gets the mean of its tied positions as a "
            "fractional rank and R@K counts rank - 1 < K, so a rank of 5.5 is an R@5 hit while "
            "1.5 is an R@1 miss (R@1 tests rank - 1 == 0); MdR/MnR equal ours"
        ),
        notes=("4 frames at the centres of 4 equal segments (test-time 'uniform' sampling)",),
    ),
    "clip_benchmark": Preset(
        name="clip_benchmark",
        follows="CLIP_benchmark zeroshot_retrieval.py: recall_at_k over a positives matrix",
        v2t="all_captions",
        median=_NP_MEDIAN,
        median_one_caption=_NP_MEDIAN,
        multi="max_sim",
        reports=("R@1", "R@5", "R@10"),
        sampling={"strategy": "clip4clip", "n": 12, "target_fps": 1.0},
        aggregation=_MEAN,
        released_ties="torch.topk picks among tied scores in an unspecified order",
        notes=("CLIP_benchmark has no video task: frames as clip4clip, mean pooled",),
    ),
    "portillo": Preset(
        name="portillo",
        follows="Portillo-Quintero et al. 2021 released notebook (k-means, best centroid)",
        v2t="caption_groups",
        median=_CLIP4CLIP_MULTI,
        median_one_caption=_NP_MEDIAN,
        multi="max_sim",
        reports=("R@1", "R@5", "R@10", "MdR", "MnR"),
        sampling={"strategy": "fps", "target_fps": 5.0, "max_frames": 64},
        aggregation={"method": "kmeans", "options": {"k": 5, "seed": 0}},
        released_ties="argsort of the scores: tied videos are ranked by storage order",
        notes=(
            "the paper's text (3.4) describes min-rank over centroids; its notebook, which "
            "produced the figures, scores a video by its best centroid (max_sim)",
            "several captions per video: list_recall's median is the lower middle",
        ),
    ),
    "mmeb": Preset(
        name="mmeb",
        follows="MMEB-V2 video retrieval: hit@1, the candidate ranked first is a positive",
        v2t="all_captions",
        median=_NP_MEDIAN,
        median_one_caption=_NP_MEDIAN,
        multi="max_sim",
        reports=("R@1",),
        sampling={"strategy": "uniform", "n": 8},
        aggregation=_MEAN,
        released_ties="argmax returns the first of tied candidates (storage order)",
        notes=(
            "hit@1 is R@1; the full candidate pool is ranked (MMEB's instruction-formatted "
            "subsets of candidates are not reproduced)",
        ),
    ),
}
PRESETS["clip2video"] = replace(
    PRESETS["clip4clip"],
    name="clip2video",
    sampling={"strategy": "clip2video", "n": 12},
    notes=(*PRESETS["clip4clip"].notes, "frames as CLIP2Video dumps them (5 fps, every second)"),
)


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name fails with the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown protocol preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------- validation


_CHOICES = {"multi": MULTI, "ties": TIES, "v2t": V2T, "median": MEDIANS}


def _check_choices(**chosen: str) -> None:
    """Each option must be one of its valid names; the error lists them."""
    for key, value in chosen.items():
        if value not in _CHOICES[key]:
            raise ValueError(f"{key}={value!r}; valid: {', '.join(_CHOICES[key])}")
