"""The metric options, their valid names, and the protocol record written into metrics.json.

Why a module of its own: every option of ``evaluate`` and the text that says what it counts
live together, so a new option is one name in one tuple plus one entry in ``PROTOCOL``.
"""

from __future__ import annotations

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


# --------------------------------------------------------------------------- validation


_CHOICES = {"multi": MULTI, "ties": TIES, "v2t": V2T, "median": MEDIANS}


def _check_choices(**chosen: str) -> None:
    """Each option must be one of its valid names; the error lists them."""
    for key, value in chosen.items():
        if value not in _CHOICES[key]:
            raise ValueError(f"{key}={value!r}; valid: {', '.join(_CHOICES[key])}")
