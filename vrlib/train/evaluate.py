"""Evaluation of a head on a pair dataset: ``similarity_matrix`` and ``evaluate_model``.

The (C, V) similarity matrix is built in chunks, then ``vrlib.metrics.evaluate`` runs on it;
``_flatten_metrics`` turns its result into the ``val_*`` columns of a history row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vrlib.train.config import METRIC_KEYS
from vrlib.train.data import CachedPairs, EndToEndPairs
from vrlib.train.objective import (
    _encode_captions,
    _encode_pixels,
    _to_device,
    _video_kwargs,
    text_kwargs,
)


def _flatten_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {f"val_{d}_{k}": float(metrics[d][k]) for d in ("t2v", "v2t") for k in METRIC_KEYS}
    out["val_rsum"] = sum(out[f"val_{d}_R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10))
    return out


@torch.no_grad()
def similarity_matrix(
    model: nn.Module,
    data: CachedPairs | EndToEndPairs,
    *,
    encoder: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    autocast: Any = None,
    text_side: nn.Module | None = None,
) -> Tensor:
    """(C, V) float32 CPU similarities of every caption with every video of ``data``.

    Sides are computed in chunks of ``chunk_size`` videos / captions (kept on ``device``), then
    ``model.similarity`` fills the matrix block by block, so no (C, V, ...) tensor is ever built.
    With an ``EndToEndPairs`` the ``encoder`` first turns pixels and strings into features.
    With a ``text_side`` (a trained ``vrlib.models.TextSide``) captions go through it, chunk by
    chunk, from the data's ``text_inputs``.
    """
    device = (
        torch.device(device) if device is not None else next(_tensors(model), torch.zeros(0)).device
    )
    autocast = autocast or contextlib.nullcontext
    was_training = model.training
    side_training = text_side.training if text_side is not None else False
    model.eval()
    if text_side is not None:
        text_side.eval()
    if encoder is not None:
        encoder.model.eval()
    try:
        with autocast():
            vs = _sides(model, data, encoder, device, chunk_size, video=True)
            ts = _sides(model, data, encoder, device, chunk_size, video=False, text_side=text_side)
            n_c, n_v = len(data), data.num_videos
            sim = torch.empty(n_c, n_v, dtype=torch.float32)
            for c0 in range(0, n_c, chunk_size):
                t_chunk = {k: v[c0 : c0 + chunk_size] for k, v in ts.items()}
                for v0 in range(0, n_v, chunk_size):
                    v_chunk = {k: v[v0 : v0 + chunk_size] for k, v in vs.items()}
                    block = model.similarity(t_chunk, v_chunk)  # (c, v)
                    sim[c0 : c0 + chunk_size, v0 : v0 + chunk_size] = block.float().cpu()
    finally:
        model.train(was_training)
        if text_side is not None:
            text_side.train(side_training)
    return sim


def _tensors(model: nn.Module):
    yield from model.parameters()
    yield from model.buffers()


def _sides(
    model: nn.Module,
    data: Any,
    encoder: Any,
    device: torch.device,
    chunk: int,
    video: bool,
    text_side: nn.Module | None = None,
) -> dict[str, Tensor]:
    n = data.num_videos if video else len(data)
    parts: list[dict[str, Tensor]] = []
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(n, start + chunk))
        batch = data.video_batch(idx) if video else data.text_batch(idx)
        batch = _to_device(batch, device)
        if encoder is not None:
            batch = _encode_side_end_to_end(encoder, batch, model, video)
        if video:
            parts.append(model.video_side(**_video_kwargs(model, batch, "validation")))
        else:
            parts.append(model.text_side(**text_kwargs(model, batch, text_side, "validation")))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _encode_side_end_to_end(
    encoder: Any, batch: dict[str, Any], model: nn.Module, video: bool
) -> dict[str, Any]:
    if video:
        out = dict(batch, frames=_encode_pixels(encoder, batch["pixels"], batch["mask"]))
        if "pixels_2x" in batch:
            out["frames_2x"] = _encode_pixels(encoder, batch["pixels_2x"], batch["mask_2x"])
        return out
    return dict(
        batch, **_encode_captions(encoder, batch["captions"], getattr(model, "needs_tokens", False))
    )


def evaluate_model(
    model: nn.Module,
    data: CachedPairs | EndToEndPairs | Tensor | Sequence[Tensor],
    mask: Tensor | None = None,
    text: Tensor | None = None,
    tokens: Tensor | None = None,
    token_mask: Tensor | None = None,
    caption_to_video: Any = None,
    *,
    frames_2x: Any = None,
    mask_2x: Tensor | None = None,
    encoder: Any = None,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
    autocast: Any = None,
    text_side: nn.Module | None = None,
    **metric_kw: Any,
) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on ``data`` via ``vrlib.metrics.evaluate``.

    Call it as ``evaluate_model(model, cached_pairs)`` or, with raw tensors as in INTERFACES.md,
    ``evaluate_model(model, frames, mask, text, tokens, token_mask, caption_to_video)``.
    ``metric_kw`` (multi, ties, dsl, ...) goes to ``vrlib.metrics.evaluate``. ``text_side``: a
    trained text side fed from the data's ``text_inputs`` (see ``similarity_matrix``).

    Returns:
        ``{"t2v": {...}, "v2t": {...}, "protocol": {...}}`` as ``vrlib.metrics.evaluate``.
    """
    if not isinstance(data, (CachedPairs, EndToEndPairs)):
        if text is None or caption_to_video is None:
            raise ValueError("evaluate_model with raw frames needs text and caption_to_video")
        data = CachedPairs(
            data, text, caption_to_video, mask=mask, tokens=tokens, token_mask=token_mask,
            frames_2x=frames_2x, mask_2x=mask_2x,
        )  # fmt: skip
    sim = similarity_matrix(
        model, data, encoder=encoder, chunk_size=chunk_size, device=device, autocast=autocast,
        text_side=text_side,
    )  # fmt: skip
    return _evaluate_sim(sim, data.caption_to_video.numpy(), **metric_kw)


def _evaluate_sim(sim: Tensor, caption_to_video: np.ndarray, **kw: Any) -> dict[str, Any]:
    from vrlib.metrics import evaluate

    return evaluate(sim, caption_to_video, **kw)
