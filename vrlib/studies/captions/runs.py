"""Study 03's cached protocol, the labelled cheap ablation: per-epoch pairs of cached features,
training, tests, and the zero-shot baseline (step 0 of both protocols).

Why apart from ``captions.study`` (what is asked, the guard, the claims) and ``captions.data``
(the labels and candidate sets both protocols share): this is the machinery of the cached runs,
the pairs whose frames and captions change every epoch and the one engine ``vrlib.train.fit``.

The training protocol, as the paper's §2 with cached features:

- video side: mean pooling of the frozen expert's frame embeddings, then a residual linear map
  ``v + W v`` with ``W`` zero-initialised (:class:`MeanPoolProjection`; at init it *is* mean
  pooling). The paper fine-tunes the whole image tower (``captions.end_to_end``); a D x D map is
  the cheap trainable part that keeps a training step free of the image tower.
- text side: ``vrlib.models.build_text_side`` (``adapter`` or ``last_blocks``) on cached text
  inputs of every candidate caption, computed once for the whole pool.
- frames: N = 10 segment-random frames, a new draw each epoch. Draws are extracted once for
  ``frame_epochs`` epochs (each a feature-cache file) and epoch ``e`` reads draw
  ``e % frame_epochs``: with fewer draws than epochs the draws cycle.
- captions: :class:`EpochPairs` holds one caption slot per video; ``set_epoch`` (called by the
  engine before each epoch) fills it with ``vrlib.captions.draw(selection, epoch, seed)``.
- no validation on ground truth: the last epoch's model is tested.

Seeds: the frame draws and the captions are computed once (``params.seed``) and shared by every
run; a training seed sets the initialisation, the batch order and each epoch's caption draw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vrlib.models.base import HeadConfig, TemporalHead, check_sequence, l2norm
from vrlib.models.clip4clip import pool_frames
from vrlib.studies.captions.data import TrainData, guarded_selection
from vrlib.studies.captions.study import (
    CACHED,
    GT_CAPTIONS,
    ZERO_SHOT,
    CaptionSelectionParams,
    RunSpec,
)
from vrlib.studies.common import start_temperature
from vrlib.train import CachedPairs, TrainConfig
from vrlib.train.data import _pad_frames

# ----------------------------------------------------------------------------- model and pairs


class MeanPoolProjection(TemporalHead):
    """Mean pooling, then a zero-initialised residual linear map: ``l2norm(p + W p)``.

    The video side's trainable part (see the module docstring); equals ``meanP`` at init.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__(config)
        self.proj = nn.Linear(config.dim, config.dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def encode_video(self, frames: Tensor, mask: Tensor) -> Tensor:
        frames, mask = check_sequence(frames, mask, self.dim, "frames")
        pooled = pool_frames(frames, mask)  # (B, D)
        return l2norm(pooled + self.proj(pooled))


class EpochPairs(CachedPairs):
    """One (video, caption) pair per video whose frames and caption change every epoch.

    Args:
        frames_by_epoch: E per-video frame features (lists of (T_i, D)); epoch e uses e % E.
        pool_inputs: text inputs (``extract_text_inputs``) of a caption pool, (P, ...) each.
        pool: the P caption texts, in the order of ``pool_inputs``.
        draw: ``epoch -> V`` texts, one per video (each must be in ``pool``).
    """

    def __init__(
        self,
        frames_by_epoch: Sequence[Sequence[Tensor]],
        pool_inputs: dict[str, Tensor],
        pool: Sequence[str],
        draw: Any,
    ) -> None:
        self._frames = [_pad_frames(f, None, "EpochPairs.frames") for f in frames_by_epoch]
        self._inputs, self._where, self._draw = (
            pool_inputs,
            {t: i for i, t in enumerate(pool)},
            draw,
        )
        n = self._frames[0][0].shape[0]
        idx = self._indices(0)
        super().__init__(
            list(frames_by_epoch[0]), pool_inputs["text"][idx], np.arange(n),
            text_inputs={k: v[idx] for k, v in pool_inputs.items()},
        )  # fmt: skip
        self.texts: list[str] = self._draw(0)

    def _indices(self, epoch: int) -> Tensor:
        texts = self._draw(epoch)
        missing = [t for t in texts if t not in self._where]
        if missing:
            raise KeyError(f"EpochPairs: drawn texts not in the caption pool, e.g. {missing[0]!r}")
        return torch.as_tensor([self._where[t] for t in texts], dtype=torch.long)  # (V,)

    def set_epoch(self, epoch: int) -> None:
        """Swap in epoch ``epoch``'s frame draw and caption draw (the engine calls this)."""
        idx = self._indices(epoch)
        self.frames, self.mask = self._frames[epoch % len(self._frames)]
        self.text = self._inputs["text"][idx]
        self.text_inputs = {k: v[idx] for k, v in self._inputs.items()}
        self.texts = self._draw(epoch)


# ----------------------------------------------------------------------------- pairs of a run


def train_pairs(spec: RunSpec, data: TrainData, seed: int) -> EpochPairs:
    """The run's training pairs, after the no-ground-truth guard.

    Raises:
        GroundTruthInTraining: a candidate text of a non-upper-bound run is not a captioner's.
    """
    from vrlib.captions import draw

    sel = guarded_selection(spec, data)
    return EpochPairs(
        data.frames_by_epoch, data.pool_inputs, data.pool, lambda e: draw(sel, e, seed)
    )


# ----------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    """One (run, seed): history, test metrics and the rank of every test query (T2V)."""

    spec: RunSpec
    seed: int
    history: list[dict[str, Any]]
    test: dict[str, Any]
    t2v_ranks: np.ndarray
    wall_s: float
    card: Any = None  # its result card (vrlib.evaluation.study_cards), for the leaderboard


STUDY = "caption_selection"  # the name on its result cards


def build_side(params: CaptionSelectionParams, encoder: Any, seed: int | None = None) -> nn.Module:
    from vrlib.models import build_text_side

    if seed is not None:
        torch.manual_seed(seed)
    cfg = {k: v for k, v in params.text_side.items() if k != "name"}
    return build_text_side(params.text_side["name"], encoder, dim=encoder.embed_dim, **cfg)


def _test(head: nn.Module, side: nn.Module | None, test: CachedPairs, cfg: TrainConfig):
    """Test metrics, T2V ranks and the ``(C, V)`` similarity (for the run's card)."""
    from vrlib.metrics import evaluate, ranks
    from vrlib.train import similarity_matrix

    device = next(head.parameters()).device  # where fit left it (cuda under train.device auto)
    if side is not None:
        side.to(device)
    sim = similarity_matrix(
        head, test, text_side=side, chunk_size=cfg.eval_chunk_size, device=device
    )  # (C, V)
    c2v = test.caption_to_video
    return evaluate(sim, c2v), ranks(sim, c2v, "t2v"), sim


def card_of(params: CaptionSelectionParams, spec: RunSpec, seed: int, sim, test: Any):
    """The run's result card: the test split scored under the eval harness's preset."""
    from vrlib.evaluation.study_cards import study_card

    return study_card(
        sim, test.caption_to_video, dataset=params.data.dataset, split=params.test_split,
        root=params.data.resolve_root(), study=STUDY, setting=spec.key, seed=seed,
        sampling=params.test_sampling.model_dump(),
    )  # fmt: skip


def zero_shot(
    params: CaptionSelectionParams, encoder: Any, test: CachedPairs, seed: int
) -> RunResult:
    """The expert's mean pooling and its frozen text embedding, nothing trained (the baseline)."""
    start = time.perf_counter()
    metrics, r, sim = _untrained(params, encoder, test)
    spec = RunSpec(ZERO_SHOT, 0, ())
    card = card_of(params, spec, seed, sim, test)
    return RunResult(spec, seed, [], metrics, r, time.perf_counter() - start, card)


def _untrained(params: CaptionSelectionParams, encoder: Any, pairs: CachedPairs):
    """:func:`_test` of the untrained model (mean pooling, the frozen text embedding)."""
    head = MeanPoolProjection(HeadConfig(dim=encoder.embed_dim, num_frames=params.test_sampling.n))
    return _test(head.eval(), None, pairs, params.train)


def _fit(
    spec: RunSpec,
    seed: int,
    params: CaptionSelectionParams,
    encoder: Any,
    data: TrainData,
    val: Any,
    **cfg_update,
):
    """A fresh head and text side trained on ``spec``'s captions with ``seed``: (head, side, fit's
    result, cfg)."""
    from vrlib.train import fit

    update = {
        "seed": seed,
        "temperature": start_temperature(params.temperature, encoder),
        **cfg_update,
    }
    cfg = params.train.model_copy(update=update)
    pairs = train_pairs(spec, data, seed)
    torch.manual_seed(seed)
    head = MeanPoolProjection(HeadConfig(dim=encoder.embed_dim, num_frames=params.train_sampling.n))
    side = build_side(params, encoder, seed)
    result = fit(head, pairs, val, cfg, text_side=side)
    return head.eval(), side.eval(), result, cfg


def train_and_test(
    spec: RunSpec,
    seed: int,
    params: CaptionSelectionParams,
    encoder: Any,
    data: TrainData,
    test: CachedPairs,
    lr: float,
) -> RunResult:
    """Train both sides on ``spec``'s pseudo-captions with ``seed`` at ``lr``; test the last
    epoch."""
    start = time.perf_counter()
    head, side, result, cfg = _fit(spec, seed, params, encoder, data, None, lr=lr)
    metrics, r, sim = _test(head, side, test, cfg)
    card = card_of(params, spec, seed, sim, test)
    return RunResult(spec, seed, result.history, metrics, r, time.perf_counter() - start, card)


def training_curves(
    params: CaptionSelectionParams,
    encoder: Any,
    data: TrainData,
    test: CachedPairs,
    zero_shot_r1: float,
    lr: float,
) -> list[dict[str, Any]]:
    """Test T2V R@1 after every epoch of Table 1's runs and the ground-truth upper bound (first
    seed), with epoch 0 = the untrained model (which *is* the zero-shot baseline).

    A diagnostic of where the training signal goes, computed beside the real runs: nothing here
    selects an epoch or a model (runs are tested at their last epoch, with no labels to pick by).
    """
    labels = [c.label for c in params.captioners]
    specs = [RunSpec("rand_top_k", params.combine_k, (label,)) for label in labels]
    specs += (
        [RunSpec(GT_CAPTIONS, params.combine_k, ())] if GT_CAPTIONS in params.upper_bounds else []
    )
    rows = []
    for spec in specs:
        _, _, result, _ = _fit(
            spec, params.seeds[0], params, encoder, data, test, eval_every_epochs=1, lr=lr
        )
        rows.append({"run": spec.key, "epoch": 0, "train loss": np.nan, "t2v R@1": zero_shot_r1})
        rows += [
            {
                "run": spec.key,
                "epoch": h["epoch"],
                "train loss": h["train_loss"],
                "t2v R@1": h["val_t2v_R@1"],
            }
            for h in result.history
        ]
    return rows


def choose_lr(
    params: CaptionSelectionParams, encoder: Any, data: TrainData, val: CachedPairs | None
) -> list[dict[str, Any]]:
    """Val T2V R@1 of each of ``params.lrs`` (first seed, the first captioner's Top-K run), the
    untrained model as lr 0; rows ``{protocol, run, lr, t2v R@1, chosen}``. With one lr there
    is nothing to choose: one row, R@1 NaN, ``val`` unread (it may be None)."""
    if len(params.lrs) == 1:
        return [{"protocol": CACHED, "run": "given", "lr": params.lrs[0],
                 "t2v R@1": float("nan"), "chosen": True}]  # fmt: skip
    spec = RunSpec("rand_top_k", params.combine_k, (params.captioners[0].label,))
    untrained = _untrained(params, encoder, val)[0]["t2v"]["R@1"]
    rows = [{"protocol": CACHED, "run": "step 0 (untrained)", "lr": 0.0, "t2v R@1": untrained}]
    for lr in params.lrs:
        head, side, _, cfg = _fit(spec, params.seeds[0], params, encoder, data, None, lr=lr)
        r1 = _test(head, side, val, cfg)[0]["t2v"]["R@1"]
        rows.append({"protocol": CACHED, "run": spec.key, "lr": lr, "t2v R@1": r1})
    best = max(rows[1:], key=lambda r: r["t2v R@1"])
    return [{**r, "chosen": r is best} for r in rows]


def run_all(
    params: CaptionSelectionParams,
    encoder: Any,
    data: TrainData,
    test: CachedPairs,
    lr: float,
    progress: bool = True,
) -> list[RunResult]:
    """The zero-shot baseline (once; it has no seed) and every run of ``params`` with every seed,
    each trained at ``lr`` (:func:`choose_lr`'s)."""
    from tqdm.auto import tqdm

    base = zero_shot(params, encoder, test, params.seeds[0])
    out = [
        RunResult(base.spec, s, [], base.test, base.t2v_ranks, base.wall_s, base.card)
        for s in params.seeds
    ]
    jobs = [(spec, seed) for spec in params.runs() for seed in params.seeds]
    for spec, seed in tqdm(jobs, desc="runs", disable=not progress):
        out.append(train_and_test(spec, seed, params, encoder, data, test, lr))
    return out


def write_cards(
    runs: list[RunResult], encoder: Any, params: CaptionSelectionParams, out_dir
) -> list:
    """The result card of every run at the first seed, into ``out_dir`` (for
    ``reports/leaderboard.md``; the zero-shot row is the untrained expert)."""
    from vrlib.evaluation.study_cards import write_run_cards

    named = ((r.spec.key, r.card) for r in runs)
    return write_run_cards(named, encoder, params.encoder.model, params.encoder.pretrained, out_dir)
