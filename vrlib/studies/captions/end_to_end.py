"""Study 03 end to end: the paper's protocol, both towers of the expert fine-tuned.

Ventura et al. (2024, §3) fine-tune all of CLIP on the pseudo-labelled videos: the frame
embeddings of N segment-random frames are mean-pooled (no trainable head), each video is paired
with one caption drawn from its candidate set every epoch, and the symmetric InfoNCE loss trains
both towers (Adam, lr 1e-4, cosine decay, batch 16, 10 epochs). Here the same, on vrlib-tiny,
with the engine's end-to-end mode (``vrlib.train.fit(..., encoder=...)``): meanP, the encoder's
own logit scale as the starting temperature (learned, as CLIP4Clip continues CLIP's), AdamW with
warm-up and cosine. What differs, and why:

- N = ``EndToEndParams.frames`` training frames (2 by default, the paper's 10 in
  ``msrvtt-9k.yaml``): the image tower runs on every training frame. Test frames are the study's
  ``test_sampling`` (10 uniform), as the paper.
- the lr is chosen on the **validation** split (``EndToEndParams.lrs``, first seed, the first
  captioner's Top-K run), then the test split is touched once per run; the paper gives 1e-4.
- ``frame_epochs`` frame draws (epoch ``e`` reads draw ``e % E``, as the cached protocol), each
  decoded once and kept in memory as uint8 ``(V, N, S, S, 3)`` when it fits
  (``IN_MEMORY_BYTES``), else decoded as batches read it.

The pairs (:class:`EpochPixelPairs`) swap in each epoch's frame draw and caption draw; every run
goes through the same ground-truth guard (``captions.data.guarded_selection``) as the cached
protocol.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vrlib.studies.captions.study import END_TO_END, RunSpec
from vrlib.train import EndToEndPairs, TrainConfig


class EpochPixelPairs(EndToEndPairs):
    """One (video, caption) pair per video; its frames and caption change every epoch.

    Args:
        clips_by_epoch: E frame draws, uint8 arrays or :class:`ClipFrames` of shape
            ``(V, N, S, S, 3)``; epoch e uses draw e % E.
        draw: ``epoch -> V`` caption strings, one per video.
    """

    def __init__(self, clips_by_epoch: Sequence[Any], draw: Any) -> None:
        shapes = {c.shape[:2] for c in clips_by_epoch}
        if len(shapes) != 1:
            raise ValueError(f"EpochPixelPairs: frame draws differ in (V, N): {sorted(shapes)}")
        self._clips, self._draw = list(clips_by_epoch), draw
        n_videos, n_frames = shapes.pop()
        super().__init__(self._clips[0], list(draw(0)), np.arange(n_videos), num_frames=n_frames)

    def set_epoch(self, epoch: int) -> None:
        """Swap in epoch ``epoch``'s frame draw and caption draw (the engine calls this)."""
        captions = list(self._draw(epoch))
        if len(captions) != len(self.captions):
            raise ValueError(
                f"EpochPixelPairs: draw gave {len(captions)} captions, want one a video"
            )
        self.videos, self.captions = self._clips[epoch % len(self._clips)], captions


class ClipFrames(Sequence):
    """Video ``i``'s sampled frames, decoded when read: uint8 ``(N, size, size, 3)``.

    The frame indices are ``sampling.indices(..., seed, epoch, video=video_id)``, the draw that
    ``vrlib.features.extract_frame_features`` makes for the same seed and epoch, so the cached
    protocol and this one see the same frames. ``shape`` is ``(V, N, size, size, 3)``, as the
    stacked array's (:func:`decode_clips`).
    """

    def __init__(self, dataset: Any, sampling: Any, size: int, seed: int, epoch: int = 0) -> None:
        self.videos, self.sampling, self.seed, self.epoch = dataset.videos, sampling, seed, epoch
        self.shape = (len(self.videos), sampling.n, size, size, 3)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        from vrlib.data.video import probe, read_frames

        item = self.videos[i]
        info = probe(str(item.path))
        idx = self.sampling.indices(
            info.num_frames, info.fps, seed=self.seed, epoch=self.epoch, video=item.video_id
        )
        frames = read_frames(str(item.path), idx, size=self.shape[2], resize="square")
        if len(frames) != self.sampling.n:
            raise ValueError(
                f"{item.path}: sampling gave {len(frames)} frames, end to end needs "
                f"{self.sampling.n}"
            )
        return frames


IN_MEMORY_BYTES = 2 * 1024**3
"""A draw of decoded frames up to this size is decoded once and held (the embedded world: 660
videos x 2 frames at 64 px is 16 MB); a larger one (MSR-VTT's 9k videos x 10 frames at 224 px,
13.5 GB) is decoded when a batch reads it, in the DataLoader's workers (``num_workers``)."""


def decode_clips(dataset: Any, sampling: Any, size: int, seed: int, epoch: int = 0):
    """:class:`ClipFrames` of ``dataset``, stacked into one uint8 array when it fits in
    ``IN_MEMORY_BYTES``."""
    clips = ClipFrames(dataset, sampling, size, seed, epoch)
    if int(np.prod(clips.shape)) > IN_MEMORY_BYTES:
        return clips
    return np.stack([clips[i] for i in range(len(clips))])


def encoder_size(encoder: Any) -> int:
    size = encoder.image_size
    return size if isinstance(size, int) else int(size[0])


def dataset_pixels(dataset: Any, params: Any, encoder: Any) -> EndToEndPairs:
    """``EndToEndPairs`` of ``dataset``'s ground-truth captions at the study's test sampling."""
    clips = decode_clips(dataset, params.test_sampling.config(), encoder_size(encoder), params.seed)
    captions = [c.text for c in dataset.captions]
    return EndToEndPairs(clips, captions, dataset.caption_to_video, num_frames=clips.shape[1])


def split_pixels(params: Any, split: str, encoder: Any) -> EndToEndPairs:
    """:func:`dataset_pixels` of the split ``split`` of the study's dataset."""
    from vrlib.data.datasets import load_dataset

    d = params.data
    kw = {"video_dir": d.video_dir} if d.video_dir else {}
    ds = load_dataset(d.dataset, d.resolve_root(), split, on_error="raise", **kw)
    return dataset_pixels(ds, params, encoder)


def train_clips(params: Any, data: Any, encoder: Any) -> list[np.ndarray]:
    """The ``frame_epochs`` training frame draws of N = ``end_to_end.frames`` frames each."""
    from vrlib.data.sampling import SamplingConfig

    sampling = SamplingConfig(strategy=params.train_sampling.strategy, n=params.end_to_end.frames)
    size = encoder_size(encoder)
    return [
        decode_clips(data.dataset, sampling, size, params.seed, epoch)
        for epoch in range(params.frame_epochs)
    ]


def fresh_encoder(encoder: Any) -> Any:
    """A copy of ``encoder`` with its own weights, for one run to fine-tune."""
    new = copy.copy(encoder)
    new.model = copy.deepcopy(encoder.model)
    return new


def train_config(params: Any, lr: float, seed: int) -> TrainConfig:
    """The engine's config of one end-to-end run (the module docstring's protocol)."""
    e2e = params.end_to_end
    return TrainConfig(
        mode="end_to_end", epochs=e2e.epochs, batch_size=e2e.batch_size, lr=lr, encoder_lr=lr,
        warmup=0.1, temperature=None, learn_temperature=True, sampling="one_caption_per_video",
        seed=seed, eval_every_epochs=0, progress=False, eval_chunk_size=512,
        num_workers=e2e.num_workers,
    )  # fmt: skip


def fit_and_score(
    spec: RunSpec,
    seed: int,
    lr: float,
    params: Any,
    encoder: Any,
    data: Any,
    clips: Sequence[np.ndarray],
    target: EndToEndPairs,
) -> tuple[torch.Tensor, list[dict[str, Any]], float]:
    """Fine-tune a copy of ``encoder`` on ``spec``'s captions; the ``(C, V)`` similarity on
    ``target`` (the val or the test split), the training history and the wall time.

    Raises:
        GroundTruthInTraining: a candidate text of a non-upper-bound run is not a captioner's.
    """
    from vrlib.captions import draw
    from vrlib.models import build_model
    from vrlib.studies.captions.data import guarded_selection
    from vrlib.train import fit, similarity_matrix

    start = time.perf_counter()
    sel = guarded_selection(spec, data)
    pairs = EpochPixelPairs(clips, lambda e: draw(sel, e, seed))
    torch.manual_seed(seed)
    head = build_model("meanP", dim=encoder.embed_dim, num_frames=params.end_to_end.frames)
    tuned = fresh_encoder(encoder)
    result = fit(head, pairs, None, train_config(params, lr, seed), encoder=tuned)
    device = next(tuned.model.parameters()).device
    sim = similarity_matrix(
        head.eval(), target, encoder=tuned, chunk_size=512, device=device
    )  # (C, V)
    return sim, result.history, time.perf_counter() - start


def choose_lr(params: Any, encoder: Any, data: Any, clips: Sequence[np.ndarray]) -> list[dict]:
    """Val T2V R@1 of each ``end_to_end.lrs`` on ``params.val_split`` (first seed, the first end-to-end run that is not an
    upper bound), with the untrained expert as ``lr`` 0; rows ``{lr, t2v R@1, chosen}``.

    One lr serves every end-to-end run; the test split is not read here. With one lr there is
    nothing to choose: one row, ``t2v R@1`` NaN, and the val split is not read either.
    """
    from vrlib.metrics import evaluate
    from vrlib.models import build_model
    from vrlib.train import similarity_matrix

    e2e = params.end_to_end
    if len(e2e.lrs) == 1:
        return [{"protocol": END_TO_END, "run": "given", "lr": e2e.lrs[0],
                 "t2v R@1": float("nan"), "chosen": True}]  # fmt: skip
    val = split_pixels(params, params.val_split, encoder)
    spec = next(s for s in params.end_to_end_runs() if not s.is_upper_bound)
    head = build_model("meanP", dim=encoder.embed_dim, num_frames=e2e.frames)
    step0 = similarity_matrix(head.eval(), val, encoder=encoder, chunk_size=512)
    rows = [{"protocol": END_TO_END, "run": "step 0 (untrained)", "lr": 0.0,
             "t2v R@1": evaluate(step0, val.caption_to_video)["t2v"]["R@1"]}]  # fmt: skip
    for lr in e2e.lrs:
        sim, _, _ = fit_and_score(spec, params.end_to_end_seeds()[0], lr, params, encoder, data,
                                  clips, val)  # fmt: skip
        rows.append({"protocol": END_TO_END, "run": spec.key, "lr": lr,
                     "t2v R@1": evaluate(sim, val.caption_to_video)["t2v"]["R@1"]})  # fmt: skip
    best = max(rows[1:], key=lambda r: r["t2v R@1"])
    return [{**r, "chosen": r is best} for r in rows]


def run_end_to_end(
    params: Any, encoder: Any, data: Any, test_dataset: Any, progress: bool = True
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The lr choice on val (:func:`choose_lr` rows) and every end-to-end run with every seed,
    tested on ``test_dataset`` (the cached protocol's test split, so queries pair up by index).

    Returns ``([], [])`` when ``params.end_to_end_runs()`` is empty.
    """
    from tqdm.auto import tqdm

    from vrlib.metrics import evaluate, ranks
    from vrlib.studies.captions.runs import RunResult, card_of

    specs = params.end_to_end_runs()
    if not specs:
        return [], []
    clips = train_clips(params, data, encoder)
    lr_rows = choose_lr(params, encoder, data, clips)
    lr = next(r["lr"] for r in lr_rows if r["chosen"])
    test = dataset_pixels(test_dataset, params, encoder)
    out = []
    jobs = [(spec, seed) for spec in specs for seed in params.end_to_end_seeds()]
    for spec, seed in tqdm(jobs, desc="end-to-end runs", disable=not progress):
        sim, history, wall = fit_and_score(spec, seed, lr, params, encoder, data, clips, test)
        c2v = test.caption_to_video
        card = card_of(params, spec, seed, sim, test)
        out.append(RunResult(spec, seed, history, evaluate(sim, c2v), ranks(sim, c2v, "t2v"),
                             wall, card))  # fmt: skip
    return lr_rows, out
