"""Study 02, the reversed twins: can a head tell a video from the same frames played backwards?

The embedded world gives some videos a *reversed twin* (the same frames in reverse order, captions
with the opposite order or direction; ``vrlib.data.synthetic``). For a caption of such a video, an
order-blind head can only score its video and the twin equally; ``twin_pairwise_accuracy`` counts
how often the caption's own video scores above its twin (ties 1/2). ``subset_t2v`` gives T2V
retrieval on the captions tagged ``temporal`` (those whose truth depends on order or direction).

The twin files are sampled and encoded on their own, so an order-blind head does not tie
exactly on them. The primary instrument (World v3: ``reversed_pairs``, scored by
``vrlib.models.reversal.own_video_order_scores``) reverses the cached frame features of every
test video instead: each temporal caption against its own video forward and backward. Every order-blind head scores exactly 50% there, and every test video with a temporal
caption counts, not only twinned ones; the twin files stay as a second, labelled figure.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vrlib.studies.temporal.settings import Setting, build_head
from vrlib.studies.temporal.study import TEMPORAL_TAG, RunResult, SplitData
from vrlib.studies.toolkit import aggregate_seeds, cluster_bootstrap
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


def twin_scores(sim: Any, caption_to_video: Any, twin_of: Any) -> np.ndarray:
    """Per caption: 1 if its own video scores above the video's reversed twin, 1/2 on an exact
    tie, 0 below; nan for captions of videos without a twin. ``(C,)`` float64.

    Args:
        sim: (C, V) similarities, captions x videos.
        caption_to_video: (C,) video of each caption.
        twin_of: (V,) index of each video's twin, -1 where it has none.
    """
    sim = torch.as_tensor(sim)
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    twin = torch.as_tensor(np.asarray(twin_of), dtype=torch.long)
    if sim.ndim != 2 or sim.shape[0] != len(c2v) or sim.shape[1] != len(twin):
        raise ValueError(
            f"sim {tuple(sim.shape)} must be (C, V) = ({len(c2v)}, {len(twin)}) "
            "to match caption_to_video and twin_of"
        )
    other = twin[c2v]  # (C,)
    has = other >= 0
    own = sim[torch.arange(len(c2v)), c2v]
    rival = sim[torch.arange(len(c2v)), other.clamp_min(0)]
    score = (own > rival).double() + 0.5 * (own == rival).double()
    return torch.where(has, score, torch.full_like(score, float("nan"))).numpy()


def reversed_pairs(pairs: CachedPairs) -> CachedPairs:
    """The same pairs with every video's valid frames (and double-rate frames) reversed."""
    from vrlib.models.reversal import reverse_frames

    out = copy.copy(pairs)
    out.frames, out.mask = reverse_frames(pairs.frames, pairs.mask)
    if pairs.frames_2x is not None:
        out.frames_2x, out.mask_2x = reverse_frames(pairs.frames_2x, pairs.mask_2x)
    return out


def video_values(per_caption: np.ndarray, caption_to_video: Any, caption_mask: Any) -> np.ndarray:
    """Per video with a selected caption, the mean of ``per_caption`` over them: ``(n,)``, in
    order of video index (the unit the reversal instrument resamples)."""
    keep = np.asarray(caption_mask, dtype=bool)
    ids, inverse = np.unique(np.asarray(caption_to_video)[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(per_caption)[keep], minlength=len(ids))
    return sums / np.bincount(inverse, minlength=len(ids))


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
        ``(accuracy, n)``: the mean of ``twin_scores`` over the ``n`` considered captions whose
        video has a twin; ``nan`` when ``n`` is 0. An order-blind scorer that gives a video and
        its twin the same embedding scores exactly 0.5.
    """
    score = twin_scores(sim, caption_to_video, twin_of)
    keep = ~np.isnan(score)
    if caption_mask is not None:
        keep &= np.asarray(caption_mask, dtype=bool)
    if not keep.any():
        return float("nan"), 0
    return float(score[keep].mean()), int(keep.sum())


def pair_values(
    per_caption: np.ndarray, caption_to_video: Any, twin_of: Any, caption_mask: Any
) -> np.ndarray:
    """Per twin pair, the mean of ``per_caption`` over the pair's selected captions: ``(P,)``.

    Why: the captions of one pair (and of its twin) share their videos, so they are not
    independent; the bootstrap resamples pairs, the unit that is independent.
    """
    c2v = np.asarray(caption_to_video)
    twin = np.asarray(twin_of)
    keep = np.asarray(caption_mask, dtype=bool) & (twin[c2v] >= 0) & ~np.isnan(per_caption)
    pair = np.minimum(c2v, twin[c2v])[keep]  # (n,) the pair's smaller video index
    ids, inverse = np.unique(pair, return_inverse=True)
    sums = np.bincount(inverse, weights=per_caption[keep], minlength=len(ids))
    return sums / np.bincount(inverse, minlength=len(ids))


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


def seed_values(runs: Sequence[RunResult], setting: str, what: str) -> np.ndarray | None:
    """Per seed and query, ``(seeds, n)``: ``"twin"`` (twin score), ``"t2v"`` or ``"v2t"`` (R@1
    hit, 100 or 0). None when the setting has no run."""
    mine = [r for r in runs if r.setting == setting]
    if not mine:
        return None
    if what == "twin":
        return np.stack([r.twin_score for r in mine])
    ranks = [r.t2v_ranks if what == "t2v" else r.v2t_ranks for r in mine]
    return np.stack([100.0 * (np.asarray(x) == 1) for x in ranks])


def seed_mean(runs: Sequence[RunResult], setting: str, what: str) -> np.ndarray | None:
    """Per query, the mean over ``setting``'s seeds of ``seed_values``; None without a run."""
    values = seed_values(runs, setting, what)
    return None if values is None else values.mean(axis=0)


def claim_units(runs: Sequence[RunResult], test: SplitData):
    """``units(setting, key)`` for ``toolkit.paired_claims_table`` on the test split: ``(seeds,
    n)`` so that the bootstrap resamples seeds too.

    Keys: ``"t2v"``/``"v2t"`` (R@1 hits over all captions / videos), ``"reversal"`` (the twin
    instrument on the temporal captions, one value per test video, in %), ``"twin"`` (the same
    against the twin files, one value per twin pair, in %) and ``"temporal"`` (R@1 hits of the
    temporal captions).
    """
    temporal = has_tag(test.tags, TEMPORAL_TAG)

    def units(setting: str, key: str) -> np.ndarray | None:
        if key == "reversal":
            mine = [r for r in runs if r.setting == setting]
            if not mine or not temporal.any():
                return None
            return np.stack([100.0 * video_values(r.reversal_score, test.caption_to_video, temporal)
                             for r in mine])  # fmt: skip
        if key == "twin":
            score = seed_values(runs, setting, "twin")
            if score is None:
                return None
            return np.stack([100.0 * pair_values(s, test.caption_to_video, test.twin_of, temporal)
                             for s in score])  # fmt: skip
        hits = seed_values(runs, setting, "t2v" if key == "temporal" else key)
        if hits is None:
            return None
        return hits[:, temporal] if key == "temporal" else hits

    return units


def claim_clusters(test: SplitData):
    """``clusters(key)`` for ``toolkit.paired_claims_table``: the video of each caption for
    ``t2v`` and ``temporal`` (a video's captions are resampled together); None for ``v2t`` (one
    query per video), ``reversal`` (one value per video) and ``twin`` (one per twin pair)."""
    c2v = np.asarray(test.caption_to_video)
    temporal = has_tag(test.tags, TEMPORAL_TAG)
    return {"t2v": c2v, "temporal": c2v[temporal]}.get


def twin_rows(
    runs: Sequence[RunResult], test: SplitData, *, n_boot: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per setting: reversal accuracy (the twin instrument), twin accuracy (the twin files) and
    temporal-caption R@1, mean and std over seeds, and a 95% cluster-bootstrap interval over test
    videos (reversal, R@1 of the temporal captions) or twin pairs (twin files), seeds a level.

    ``twin_acc`` / ``twin_acc_temporal`` weight each twin pair equally (the mean over a pair's
    captions, then over pairs), so that the interval brackets the number it is reported with.
    """
    units, clusters = claim_units(runs, test), claim_clusters(test)
    every = np.ones(len(test.tags), dtype=bool)
    per_seed = []
    for r in runs:
        one = claim_units([r], test)
        per_seed.append(
            {
                "setting": r.setting,
                "seed": r.seed,
                "twin_acc": 100.0
                * pair_values(
                    r.twin_score, test.caption_to_video, test.twin_of, every
                ).mean(),  # fmt: skip
                "reversal_acc": float(one(r.setting, "reversal").mean()),
                "twin_acc_temporal": float(one(r.setting, "twin").mean()),
                "temporal_R@1": r.temporal["R@1"],
                "all_R@1": r.test["t2v"]["R@1"],
            }
        )
    out = aggregate_seeds(per_seed, keys=("setting",))
    for row in out:
        run = next(r for r in runs if r.setting == row["setting"])
        for key, name in (
            ("reversal", "reversal_acc"),
            ("twin", "twin_acc_temporal"),
            ("temporal", "temporal_R@1"),
        ):
            ci = cluster_bootstrap(
                units(row["setting"], key), clusters(key), n_boot=n_boot, seed=seed
            )
            row[f"{name}_lo"], row[f"{name}_hi"] = ci["lo"], ci["hi"]
        row.update(
            reversal_videos=int(units(row["setting"], "reversal").shape[1]),
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
