"""Videos as pools of decoded frames: training clips and the paper's test protocol.

Why a pool: Frozen in Time draws new TSN segment-random frames from every video in every pass
over the data, and tests on frames at several stride offsets. Decoding a fixed, uniform pool of
frames per video once (``decode_clip_set``) lets both read frames from memory: a clip of T frames
is T indices into the pool. The pool size bounds how many distinct frames a segment can offer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrlib.models.frozen import FrozenInTime


@dataclass
class ClipSet:
    """Videos as pools of decoded, normalised frames, with their captions.

    Attributes:
        frames: per video, float16 (K_i, 3, S, S) normalised pixels: a uniform pool of frames of
            the video from which clips are sampled (segment-random in training, strided at test).
        captions: caption strings; ``caption_to_video`` (C,) their video.
        video_ids, twin_of, tags: ids, the reversed-twin index (-1 if none), per-caption tags.
    """

    frames: list[Tensor]
    captions: list[str]
    caption_to_video: np.ndarray
    video_ids: list[str] = field(default_factory=list)
    twin_of: np.ndarray | None = None
    tags: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_video = [[] for _ in self.frames]
        for c, v in enumerate(self.caption_to_video.tolist()):
            self.by_video[v].append(c)
        empty = [i for i, caps in enumerate(self.by_video) if not caps]
        if empty:
            raise ValueError(f"ClipSet: videos {empty[:5]} have no caption")


def decode_clip_set(
    dataset: Any,
    preprocess: Any,
    pool_frames: int,
    twins: Callable[[list[Any]], np.ndarray] | None = None,
    on_error: str = "raise",
) -> tuple[ClipSet, list[tuple[str, str]]]:
    """Decode ``pool_frames`` uniformly spread frames of every video of a ``RetrievalDataset``.

    ``preprocess`` is the expert's ``ClipEncoder.preprocess_frames`` (resize, crop, normalise), so
    video frames look to the model exactly as the images it was pretrained on. ``twins`` maps the
    kept videos to their reversed-twin index (e.g. study 02's ``twin_index``). A video that fails
    to decode raises ``VideoDecodeError`` (``on_error="raise"``) or is dropped with its captions
    (``"skip"``).

    Returns:
        The ``ClipSet`` and the ``(video_id, reason)`` of every skipped video.
    """
    from tqdm.auto import tqdm

    from vrlib.data.sampling import frame_indices
    from vrlib.data.video import VideoDecodeError, probe, read_frames

    frames, failed = [], []
    for item in tqdm(dataset.videos, desc=f"decode {dataset.split}", leave=False):
        try:
            info = probe(item.path)
            idx = frame_indices(info.num_frames, info.fps, "all", max_frames=pool_frames)
            pixels = preprocess(read_frames(item.path, idx))  # (K, 3, S, S)
        except VideoDecodeError as err:
            if on_error != "skip":
                raise
            failed.append((item.video_id, str(err)))
            continue
        frames.append(pixels.to("cpu", torch.float16))
    if failed:
        dataset = dataset.drop_videos(failed)
    clips = ClipSet(
        frames=frames,
        captions=[c.text for c in dataset.captions],
        caption_to_video=np.asarray(dataset.caption_to_video),
        video_ids=[v.video_id for v in dataset.videos],
        twin_of=None if twins is None else np.asarray(twins(dataset.videos)),
        tags=[tuple(c.tags) for c in dataset.captions],
    )
    return clips, failed


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def train_frames(pool_size: int, frames: int, seed: int, epoch: int, video: int) -> np.ndarray:
    """TSN segment-random pool indices of ``video`` in pass ``epoch`` (new frames every pass).

    The shared ``segment_random`` sampler, seeded by one integer derived from (seed, epoch,
    video): here a video is an index into a :class:`ClipSet`, not the name the sampler's own
    per-epoch seeding hashes.
    """
    from vrlib.data.sampling import frame_indices

    return frame_indices(
        pool_size, float("nan"), "segment_random", frames, seed=_derived_seed(seed, epoch, video)
    )


def centred_offsets(frames: int, views: int) -> list[float]:
    """Offsets (fractions of a segment) so that ``frames`` x offsets ~ ``views`` frames.

    Each is centred in one of ``views // frames`` equal parts of the segment, ``(j + 1/2) / k``:
    with one view it is the segment's centre, the ``uniform`` rule every other study tests with.
    Frozen in Time's own rule starts each part at its first frame instead (``j / k``,
    ``vrlib.data.sampling.stride_offsets``); the two differ by half a part.
    """
    k = max(1, views // frames)
    return [(j + 0.5) / k for j in range(k)]


# ----------------------------------------------------------------------------- the test protocol


@torch.no_grad()
def clip_similarity(model: FrozenInTime, tokenizer: Any, clips: ClipSet, frames: int, views: int,
                    expansion: str = "zeros", batch: int = 32, reverse: bool = False,
                    videos: Sequence[int] | None = None,
                    texts: Sequence[str] | None = None) -> Tensor:  # fmt: skip
    """(C, V) similarities on ``clips`` with the test protocol (stride offsets averaged): the
    captions' embeddings (:func:`encode_captions`) against the videos' (:func:`encode_clips`).

    ``videos``: only these videos' columns, in this order (``None``: all), e.g. the twinned ones
    for the reversed pass, which then costs those videos rather than the whole split.
    ``texts``: these rows instead of the clips' captions (e.g. captions with a word swapped).
    """
    captions = encode_captions(model, tokenizer, clips.captions if texts is None else texts)
    return captions @ encode_clips(model, clips, frames, views, expansion, batch, reverse, videos).T


@torch.no_grad()
def encode_clips(model: FrozenInTime, clips: ClipSet, frames: int, views: int,
                 expansion: str = "zeros", batch: int = 32, reverse: bool = False,
                 videos: Sequence[int] | None = None) -> Tensor:  # fmt: skip
    """(V, E) unit video embeddings by the test protocol: ``frames`` frames at each of the
    centred stride offsets (``centred_offsets``, about ``views`` frames per video), embeddings
    summed over offsets and normalised. ``videos``: only these, in this order (``None``: all).

    When ``frames`` exceeds what the model has learned, a copy is expanded with ``expansion``
    (the model itself is left as it is, so evaluating mid-curriculum does not change training).
    ``reverse`` feeds every sampled clip's frames in reverse order: the same pixels played
    backwards, the twin instrument of ``vrlib.models.reversal`` for a model that reads pixels.
    """
    from vrlib.data.sampling import frame_indices

    if frames > model.frames:
        model = copy.deepcopy(model)
        model.expand_frames(frames, expansion)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    offsets = centred_offsets(frames, views)
    chosen = range(len(clips.frames)) if videos is None else [int(v) for v in videos]
    embeddings = []
    for start in range(0, len(chosen), batch):
        pools = [clips.frames[v] for v in chosen[start : start + batch]]
        emb = 0
        for off in offsets:
            idx = [frame_indices(len(p), float("nan"), "stride", frames, offset=off) for p in pools]
            pixels = torch.stack([p[torch.from_numpy(i)] for p, i in zip(pools, idx, strict=True)])
            pixels = pixels.flip(1) if reverse else pixels  # (b, frames, 3, S, S)
            emb = emb + model.encode_video(pixels.to(device, torch.float32))  # (b, E)
        embeddings.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
    model.train(was_training)
    return torch.cat(embeddings)


@torch.no_grad()
def encode_captions(model: FrozenInTime, tokenizer: Any, texts: Sequence[str]) -> Tensor:
    """(C, E) embeddings of ``texts`` by the model's text tower, in eval mode.

    Why apart from the videos: a run's instruments (reversed twins, word swaps) pair new videos
    with the captions already encoded, or new captions with the videos, and reuse the other side;
    on 2 cores the 6,160 test captions cost about three times the 308 videos.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts = list(texts)
    encoded = [model.encode_text(tokenizer(texts[s : s + 256]).to(device)).cpu()
               for s in range(0, len(texts), 256)]  # fmt: skip
    model.train(was_training)
    return torch.cat(encoded) if encoded else torch.zeros(0, model.visual.proj.shape[1])


def geometric_mean_recall(result: dict[str, Any], direction: str = "t2v") -> float:
    """Figure 4's summary: the geometric mean of R@1, R@5 and R@10 (percent)."""
    r = result[direction]
    return float((r["R@1"] * r["R@5"] * r["R@10"]) ** (1.0 / 3.0))
