"""Labels from frames: M equally spaced frames per video, a caption and a CLIPScore for each.

Why: Ventura et al. train a video model from captions that image captioners write on frames of
unlabelled videos. :func:`caption_videos` captions M uniformly spaced frames (M = 10 in the
paper) of every video with one captioner and scores each caption against its own frame with the
image-text expert (CLIPScore, Hessel et al. 2021: ``2.5 * max(cos, 0)``). :func:`stack` puts the
tables of I captioners side by side as the (V, I, M) candidates that the selection rules
(``vrlib.captions.selection``) choose from.

The cache: one folder per (captioner fingerprint, which includes its weights and decoding;
expert fingerprint; M; frame size), holding JSON shards of a few videos each, written atomically
as they finish. A killed run resumes with the shards already written; a damaged shard or a video
whose file changed (size, mtime) is captioned again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vrlib.features.cache import content_key
from vrlib.features.decode import clip_range
from vrlib.io import atomic_write_text

CACHE_FORMAT = 1


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """CLIPScore of matching rows (Hessel et al. 2021): ``2.5 * max(cos(image, text), 0)``.

    Args:
        image_emb, text_emb: (N, d) embeddings of each frame and its own caption (any norm).

    Returns:
        float32 (N,) in [0, 2.5].
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"shapes differ: images {tuple(image_emb.shape)}, texts {tuple(text_emb.shape)}"
        )
    cos = torch.nn.functional.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
    return 2.5 * cos.clamp(min=0)


class GroundTruthDescriber:
    """The upper bound: describes a synthetic video's frames from the world's own record.

    It reads ``meta["events"]`` (``vrlib.data.synthetic.scene_at``) and never the pixels, so it
    is exact where a captioner guesses. It is labelled as an upper bound wherever it appears and
    never counts as a captioner result. Wording is drawn like the world's image captions, from a
    generator seeded by (seed, video id, frame index), so the same seed gives the same captions.
    """

    name = "ground-truth (upper bound)"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @property
    def fingerprint(self) -> str:
        from vrlib.data.synthetic import generator_sha

        return hashlib.sha256(f"ground-truth|{self.seed}|{generator_sha()}".encode()).hexdigest()

    def describe(self, video_id: str, meta: dict, indices: np.ndarray) -> list[str]:
        """One caption per frame index of a synthetic video (``meta`` from videos.jsonl)."""
        from vrlib.data.synthetic import describe_frame

        if "events" not in meta:
            raise ValueError(
                f"video {video_id!r}: no 'events' in its metadata; the ground-truth describer needs a synthetic world"
            )
        salt = int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:4], "little")
        return [
            describe_frame(meta, int(i), np.random.default_rng([self.seed, salt, int(i)]))
            for i in indices
        ]


@dataclass
class VideoCaptions:
    """One captioner's captions of M frames per video, with their CLIPScores.

    Attributes:
        captioner: its name.
        video_ids: V ids, in dataset order.
        frame_indices: int64 (V, M), the frames captioned.
        captions: V lists of M captions.
        scores: float32 (V, M), CLIPScore of each caption with its own frame.
    """

    captioner: str
    video_ids: list[str]
    frame_indices: np.ndarray
    captions: list[list[str]]
    scores: np.ndarray


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _frames_of(item: Any, m: int, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """M uniformly spaced frames of the item's clip (whole file when start/end are unset)."""
    from vrlib.data.sampling import frame_indices
    from vrlib.data.video import read_sampled

    def choose(info) -> np.ndarray:
        first, count = clip_range(item, info)
        return first + frame_indices(count, info.fps, "uniform", m)

    frames, indices, _ = read_sampled(item.path, choose, size=size, resize="square")
    return frames, indices


class _Shards:
    """The cache folder of one run key: ``shard-XXXXX.json`` files of finished videos."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = folder, key

    def load(self) -> dict[str, dict]:
        """video_id -> entry of every readable shard of this key (damaged shards are skipped)."""
        done: dict[str, dict] = {}
        for path in sorted(self.folder.glob("shard-*.json")):
            try:
                shard = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged shard is recomputed
            if (
                isinstance(shard, dict)
                and shard.get("key") == self.key
                and shard.get("format") == CACHE_FORMAT
            ):
                done.update({e["video_id"]: e for e in shard["entries"]})
        return done

    def write(self, entries: list[dict]) -> None:
        names = [int(p.stem.split("-")[1]) for p in self.folder.glob("shard-*.json")]
        n = max(names, default=-1) + 1  # never overwrites a shard, even after one was deleted
        shard = {"format": CACHE_FORMAT, "key": self.key, "entries": entries}
        atomic_write_text(self.folder / f"shard-{n:05d}.json", json.dumps(shard))


def caption_videos(
    dataset: Any,
    captioner: Any,
    expert: Any,
    m: int = 10,
    *,
    size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    videos_per_shard: int = 8,
    progress: bool = True,
) -> VideoCaptions:
    """Caption M uniformly spaced frames of every video and score each caption (cached, resumable).

    Args:
        dataset: a ``RetrievalDataset`` (its ``videos``; captions are never read).
        captioner: a :class:`~vrlib.captions.base.Captioner` or a :class:`GroundTruthDescriber`.
        expert: the ``ClipEncoder`` that computes CLIPScore.
        m: frames per video.
        size: decode frames at this square size (None: native).
        cache_dir: default ``$VRLIB_HOME/captions``.
        videos_per_shard: videos captioned together (one batch) and written as one shard.
        progress: show a progress bar over videos.
    """
    from vrlib.paths import vrlib_home

    if m < 1 or videos_per_shard < 1:
        raise ValueError(f"m and videos_per_shard must be >= 1, got {m}, {videos_per_shard}")
    key = _sha(
        {
            "format": CACHE_FORMAT,
            "captioner": captioner.fingerprint,
            "expert": expert.fingerprint,
            "m": m,
            "size": size,
        }
    )
    shards = _Shards(Path(cache_dir or vrlib_home() / "captions") / key[:32], key)
    done = shards.load()
    todo = [v for v in dataset.videos if done.get(v.video_id, {}).get("content") != content_key(v)]
    bar = tqdm(
        total=len(dataset.videos),
        initial=len(dataset.videos) - len(todo),
        desc=f"captions {captioner.name}",
        disable=not progress,
        leave=False,
    )
    for start in range(0, len(todo), videos_per_shard):
        chunk = todo[start : start + videos_per_shard]
        entries = _caption_chunk(chunk, captioner, expert, m, size)
        shards.write(entries)
        done.update({e["video_id"]: e for e in entries})
        bar.update(len(chunk))
    bar.close()
    rows = [done[v.video_id] for v in dataset.videos]
    return VideoCaptions(
        captioner=captioner.name,
        video_ids=[v.video_id for v in dataset.videos],
        frame_indices=np.array([r["indices"] for r in rows], dtype=np.int64).reshape(len(rows), m),
        captions=[r["captions"] for r in rows],
        scores=np.array([r["scores"] for r in rows], dtype=np.float32).reshape(len(rows), m),
    )


def _caption_chunk(
    chunk: list, captioner: Any, expert: Any, m: int, size: int | None
) -> list[dict]:
    decoded = [_frames_of(v, m, size) for v in chunk]
    frames = np.concatenate([f for f, _ in decoded])  # (len(chunk) * M, H, W, 3)
    if isinstance(captioner, GroundTruthDescriber):
        captions = [
            c
            for v, (_, idx) in zip(chunk, decoded, strict=True)
            for c in captioner.describe(v.video_id, v.meta, idx)
        ]
    else:
        captions = captioner.caption(frames, batch_size=len(frames), progress=False)
    scores = clip_score(
        expert.encode_frames(frames), expert.encode_text(captions)
    )  # (len(chunk) * M,)
    return [
        {
            "video_id": v.video_id,
            "content": content_key(v),
            "indices": idx.tolist(),
            "captions": captions[i * m : (i + 1) * m],
            "scores": scores[i * m : (i + 1) * m].tolist(),
        }
        for i, (v, (_, idx)) in enumerate(zip(chunk, decoded, strict=True))
    ]


@dataclass
class Candidates:
    """Captions of I captioners on the same M frames of V videos: what a selection rule reads.

    Attributes:
        captioners: I names.
        video_ids: V ids.
        captions: V lists of I lists of M captions.
        scores: float32 (V, I, M) CLIPScores.
    """

    captioners: list[str]
    video_ids: list[str]
    captions: list[list[list[str]]]
    scores: np.ndarray


def stack(tables: list[VideoCaptions]) -> Candidates:
    """Candidates (V, I, M) from I captioners' tables of the same videos and frames."""
    if not tables:
        raise ValueError("stack needs at least one VideoCaptions table")
    first = tables[0]
    for t in tables[1:]:
        if t.video_ids != first.video_ids or not np.array_equal(
            t.frame_indices, first.frame_indices
        ):
            raise ValueError(
                f"captioner {t.captioner!r} captioned other videos or frames than {first.captioner!r}"
            )
    return Candidates(
        captioners=[t.captioner for t in tables],
        video_ids=list(first.video_ids),
        captions=[[t.captions[v] for t in tables] for v in range(len(first.video_ids))],
        scores=np.stack([t.scores for t in tables], axis=1),  # (V, I, M)
    )
