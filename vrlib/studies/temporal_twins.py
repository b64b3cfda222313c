"""Study 02, the reversed twins: can a head tell a video from the same frames played backwards?

The embedded world gives some videos a *reversed twin* (the same frames in reverse order, captions
with the opposite order or direction; ``vrlib.data.synthetic``). For a caption of such a video, an
order-blind head can only score its video and the twin equally; ``twin_pairwise_accuracy`` counts
how often the caption's own video scores above its twin (ties 1/2). ``subset_t2v`` gives T2V
retrieval on the captions tagged ``temporal`` (those whose truth depends on order or direction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vrlib.studies.temporal_ablation import TEMPORAL_TAG, RunResult, Setting, SplitData, build_head
from vrlib.studies.toolkit import aggregate_seeds
from vrlib.train import CachedPairs


def twin_index(videos: Sequence[Any]) -> np.ndarray:
    """``(V,)`` index of each video's reversed twin among ``videos``, -1 where it has none here.

    Twins are read from ``meta["reversed_of"]`` (``vrlib.data.synthetic``) in either direction;
    a twin in another split does not count.
    """
    where = {v.video_id: i for i, v in enumerate(videos)}
    out = np.full(len(videos), -1, dtype=np.int64)
    for i, v in enumerate(videos):
        other = (getattr(v, "meta", None) or {}).get("reversed_of")
        if other is not None and other in where:
            j = where[other]
            out[i], out[j] = j, i
    return out


def twin_pairwise_accuracy(
    sim: Any, caption_to_video: Any, twin_of: Any, caption_mask: Any = None
) -> tuple[float, int]:
    """How often a caption scores its own video above the video's reversed twin.

    Args:
        sim: (C, V) similarities, captions x videos.
        caption_to_video: (C,) video of each caption.
        twin_of: (V,) index of each video's twin, -1 where it has none.
        caption_mask: optional (C,) bool, captions to consider (e.g. those tagged temporal).

    Returns:
        ``(accuracy, n)``: the mean over the ``n`` considered captions whose video has a twin of
        1 (own video strictly higher), 1/2 (exact tie) or 0; ``nan`` when ``n`` is 0. An
        order-blind scorer that gives a video and its twin the same embedding scores exactly 0.5.
    """
    sim = torch.as_tensor(sim)
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    twin = torch.as_tensor(np.asarray(twin_of), dtype=torch.long)
    if sim.ndim != 2 or sim.shape[0] != len(c2v) or sim.shape[1] != len(twin):
        raise ValueError(
            f"sim {tuple(sim.shape)} must be (C, V) = ({len(c2v)}, {len(twin)}) "
            "to match caption_to_video and twin_of"
        )
    keep = twin[c2v] >= 0  # (C,)
    if caption_mask is not None:
        keep &= torch.as_tensor(np.asarray(caption_mask), dtype=torch.bool)
    rows = keep.nonzero().flatten()
    if len(rows) == 0:
        return float("nan"), 0
    own = sim[rows, c2v[rows]]
    other = sim[rows, twin[c2v[rows]]]
    score = (own > other).double() + 0.5 * (own == other).double()
    return float(score.mean()), len(rows)


def subset_t2v(sim: Any, caption_to_video: Any, caption_mask: Any) -> dict[str, float]:
    """T2V metrics of the captions in ``caption_mask`` against all videos (R@1, R@5, MdR, n).

    ``n`` is 0 and the metrics are nan when no caption is selected.
    """
    from vrlib.metrics import ranks, summarize

    mask = np.asarray(caption_mask, dtype=bool)
    if not mask.any():
        return {"R@1": float("nan"), "R@5": float("nan"), "MdR": float("nan"), "n": 0}
    sim = torch.as_tensor(sim)[torch.from_numpy(mask)]
    r = ranks(sim, np.asarray(caption_to_video)[mask], direction="t2v")
    s = summarize(r)
    return {
        "R@1": float(s["R@1"]),
        "R@5": float(s["R@5"]),
        "MdR": float(s["MdR"]),
        "n": int(mask.sum()),
    }


def has_tag(tags: Sequence[Sequence[str]], tag: str) -> np.ndarray:
    """``(C,)`` bool: which captions (given their tag tuples) carry ``tag``."""
    return np.array([tag in t for t in tags], dtype=bool)


def twin_summary(sim: Any, split: SplitData) -> dict[str, float]:
    """Twin pairwise accuracy on all captions of twinned videos and on the temporal ones."""
    acc_all, n_all = twin_pairwise_accuracy(sim, split.caption_to_video, split.twin_of)
    acc_t, n_t = twin_pairwise_accuracy(
        sim, split.caption_to_video, split.twin_of, has_tag(split.tags, TEMPORAL_TAG)
    )
    return {
        "twin_acc": 100.0 * acc_all,
        "twin_n": n_all,
        "twin_acc_temporal": 100.0 * acc_t,
        "twin_n_temporal": n_t,
        "twin_pairs": int((split.twin_of >= 0).sum() // 2),
    }


def twin_rows(runs: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per setting: twin pairwise accuracy and temporal-subset T2V (mean and std over seeds)."""
    per_seed = [
        {
            "setting": r.setting,
            "seed": r.seed,
            "twin_acc": r.twin["twin_acc"],
            "twin_acc_temporal": r.twin["twin_acc_temporal"],
            "temporal_R@1": r.temporal["R@1"],
            "temporal_R@5": r.temporal["R@5"],
            "all_R@1": r.test["t2v"]["R@1"],
        }
        for r in runs
    ]
    out = aggregate_seeds(per_seed, keys=("setting",))
    counts = {r.setting: r for r in runs}
    for row in out:
        run = counts[row["setting"]]
        row.update(
            twin_pairs=run.twin["twin_pairs"],
            twin_n=run.twin["twin_n"],
            twin_n_temporal=run.twin["twin_n_temporal"],
            temporal_n=run.temporal["n"],
        )
    return out


def twin_embedding_gap(split: SplitData, dim: int) -> float:
    """Largest distance between the ``meanP`` embeddings of a test video and its reversed twin.

    0.0 means mean pooling cannot tell any twin pair apart (then its pairwise accuracy is
    exactly 50%); a small positive value says the sampled frames of a twin are not exactly the
    original's in reverse (sampling positions, lossy re-encoding) — nan without twins.
    """
    if not isinstance(split.pairs, CachedPairs) or not (split.twin_of >= 0).any():
        return float("nan")
    head = build_head(Setting("meanP", "meanP"), dim, split.pairs.frames.shape[1])
    emb = head.encode_video(split.pairs.frames, split.pairs.mask)  # (V, D)
    has = torch.from_numpy(split.twin_of >= 0)
    other = torch.from_numpy(np.where(split.twin_of >= 0, split.twin_of, 0))
    return float((emb[has] - emb[other[has]]).norm(dim=-1).max())


def twin_caption_similarity(split: SplitData) -> dict[str, float]:
    """How far apart the (frozen) text embeddings of a twin pair's temporal captions are.

    Why: in cached mode the text side is the frozen expert, which never saw a motion word. A video
    head can only separate a video from its reversed twin if the query embeddings of opposite
    captions differ. For each temporal caption of a twinned video this returns the mean cosine to
    its nearest temporal caption of the *twin* (``to_twin``) and of *its own video* (``to_own``):
    ``to_twin >= to_own`` means the text side cannot tell the pair apart, whatever the video head.
    """
    text = torch.nn.functional.normalize(
        torch.as_tensor(split.pairs.text, dtype=torch.float32), dim=-1
    )
    c2v = split.caption_to_video
    temporal = np.array(["temporal" in t for t in split.tags])
    to_twin, to_own = [], []
    for v in np.flatnonzero(split.twin_of >= 0):
        own = np.flatnonzero((c2v == v) & temporal)
        twin = np.flatnonzero((c2v == split.twin_of[v]) & temporal)
        if len(own) < 2 or len(twin) == 0:
            continue
        sim_own = text[own] @ text[own].T  # (n, n)
        sim_own.fill_diagonal_(-2.0)
        to_own.append(sim_own.max(dim=1).values.mean().item())
        to_twin.append((text[own] @ text[twin].T).max(dim=1).values.mean().item())
    if not to_twin:
        return {"to_twin": float("nan"), "to_own": float("nan"), "videos": 0}
    return {
        "to_twin": float(np.mean(to_twin)),
        "to_own": float(np.mean(to_own)),
        "videos": len(to_twin),
    }
