"""Study 04's data: the decoded train and test clips and the training images, and which test
videos show what the training held out (a world's held-out concepts, a shape or colour the
model starts without).

Why apart from :mod:`vrlib.studies.curriculum.runs`: what the runs train and test on is decided
here, once, before any run; the runs only read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vrlib.studies.curriculum.params import CurriculumParams
from vrlib.studies.curriculum.swaps import WordSwaps, word_swaps
from vrlib.studies.temporal.twins import twin_index
from vrlib.train.clips import ClipSet


@dataclass
class Prepared:
    """Decoded train and test videos and the preprocessed training images.

    ``held_out``: per test video, whether it shows a concept the world held out of the training
    videos (``video_concept_holdout``; the annotations' ``held_out_concepts``); None when the
    dataset does not say (real data).
    ``unseen_word``: per test video, whether it shows a shape or colour of
    ``encoder.expert_without_words`` or ``videos_without_words``; None when none is held out.
    ``swaps``: the test captions naming such a word, each swapped into the other held-out words
    (:mod:`vrlib.studies.curriculum.swaps`); None when fewer than two words are held out.
    """

    train: ClipSet
    test: ClipSet
    images: tuple[torch.Tensor, list[str]]
    skipped: list[tuple[str, str]]
    held_out: np.ndarray | None = None
    unseen_word: np.ndarray | None = None
    swaps: WordSwaps | None = None


def prepare(params: CurriculumParams, encoder: Any) -> Prepared:
    """Decode the frame pools of both splits once; images preprocessed like the expert's."""
    from vrlib.data.datasets import load_dataset
    from vrlib.pretrain import load_image_set
    from vrlib.train.clips import decode_clip_set

    d = params.data
    kw = {"video_dir": d.video_dir} if d.video_dir else {}
    root = d.resolve_root()
    train = load_dataset(d.dataset, root, params.train_split, on_error=d.on_error, **kw)
    test = load_dataset(d.dataset, root, params.test_split, on_error=d.on_error, **kw)
    if params.videos_without_words:
        train = _without_words(train, params.videos_without_words)
    if params.test_captions_per_video is not None:
        test = _subset_captions(test, params.test_captions_per_video, params.seed)
    pre = encoder.preprocess_frames
    images = load_image_set(params.image_root or root, "train", encoder)
    train_clips, train_failed = decode_clip_set(train, pre, params.pool_frames, on_error=d.on_error)
    test_clips, test_failed = decode_clip_set(
        test, pre, params.pool_frames, twins=twin_index, on_error=d.on_error
    )
    words = params.held_out_words()
    shown = _shown(test, test_clips) if words else None
    return Prepared(
        train=train_clips,
        test=test_clips,
        images=images,
        skipped=[*train.skipped, *test.skipped, *train_failed, *test_failed],
        held_out=_held_out(test, test_clips),
        unseen_word=None if shown is None else np.array([bool(s & set(words)) for s in shown]),
        swaps=None if len(words) < 2 else word_swaps(
            test_clips.captions, test_clips.caption_to_video, shown, words),
    )  # fmt: skip


def _held_out(test: Any, clips: ClipSet) -> np.ndarray | None:
    """Per decoded test video: shows a held-out concept (None if the annotations never say)."""
    meta = {v.video_id: v.meta for v in test.videos}
    if not any("held_out_concepts" in m for m in meta.values()):
        return None
    return np.array([bool(meta[v].get("held_out_concepts")) for v in clips.video_ids])


def _words_shown(video: Any, dataset: str) -> set[str]:
    """Every shape and colour a synthetic video shows at any time (its ``meta["events"]``)."""
    from vrlib.data.synthetic import concepts

    if "events" not in video.meta:
        raise ValueError(
            f"{dataset}: video {video.video_id!r} has no meta.events, so what it shows is "
            "unknown (videos_without_words and expert_without_words need the embedded world)"
        )
    return {word for pair in concepts(video.meta["events"]) for word in pair}


def _without_words(ds: Any, words: list[str]) -> Any:
    """The training videos that show none of ``words`` (shapes or colours), with their captions (Table 2's
    mechanism: the videos lack a concept that only the still images carry)."""
    from vrlib.data.datasets import RetrievalDataset

    videos = [v for v in ds.videos if not _words_shown(v, ds.name) & set(words)]
    kept = {v.video_id for v in videos}
    captions = [c for c in ds.captions if c.video_id in kept]
    return RetrievalDataset(ds.name, ds.split, ds.root, videos, captions, list(ds.skipped))


def _shown(test: Any, clips: ClipSet) -> list[set[str]]:
    """Per decoded test video: the shapes and colours it shows."""
    by_id = {v.video_id: v for v in test.videos}
    return [_words_shown(by_id[v], test.name) for v in clips.video_ids]


def _subset_captions(ds: Any, k: int, seed: int) -> Any:
    """At most ``k`` captions per video, drawn with ``seed`` (fewer queries: a cheaper test)."""
    from vrlib.data.datasets import RetrievalDataset

    rng = np.random.default_rng(seed)
    keep = []
    for v in range(len(ds.videos)):
        caps = np.flatnonzero(ds.caption_to_video == v)
        keep += sorted(rng.choice(caps, size=min(k, len(caps)), replace=False).tolist())
    return RetrievalDataset(ds.name, ds.split, ds.root, list(ds.videos),
                            [ds.captions[i] for i in sorted(keep)], list(ds.skipped))  # fmt: skip


def video_subsets(prep: Prepared, params: CurriculumParams) -> dict[str, np.ndarray]:
    """The subsets of test videos Table 2 is read on, by label: those showing a concept the world
    held out of the training videos, and those showing a held-out shape or colour (each
    only where some test video does)."""
    out = {}
    if prep.held_out is not None and prep.held_out.any():
        out["held-out concepts"] = prep.held_out
    if prep.unseen_word is not None and prep.unseen_word.any():
        out[f"of {', '.join(params.held_out_words())}"] = prep.unseen_word
    return out
