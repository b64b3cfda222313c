"""Validation of a similarity matrix and its positives before any ranking work starts.

Why apart from the ranking: every check names the argument and the reason, and runs once on the
whole input (shapes, labels, coverage) so that the chunked ranking loop can trust its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vrlib.metrics.protocol import BLOCK_ELEMENTS


@dataclass(frozen=True)
class _Problem:
    """Validated inputs: the similarity source and the positives, both on ``device``."""

    sim: np.ndarray | torch.Tensor
    labels: torch.Tensor | None  # (C,) int64, or None when a mask is given
    mask: np.ndarray | torch.Tensor | None  # (C, V) bool
    num_captions: int
    num_videos: int
    k: int
    chunk: int
    device: torch.device


def _check_groups(p: _Problem, v2t: str) -> None:
    if v2t == "caption_groups" and p.labels is None:
        raise ValueError(
            "v2t='caption_groups' needs int caption_to_video (C,): with a positives mask a "
            "caption may belong to several videos, so its caption groups are undefined"
        )


def _prepare(sim: Any, caption_to_video: Any, chunk_size: int | None, need_v2t: bool) -> _Problem:
    """Validate ``sim`` and ``caption_to_video``; errors name the argument and the reason."""
    if not isinstance(sim, np.ndarray | torch.Tensor):
        raise TypeError(f"sim must be a numpy array or torch tensor; got {type(sim).__name__}")
    if sim.ndim not in (2, 3) or 0 in sim.shape:
        raise ValueError(
            f"sim must be (C, V) or (C, V, k) with no empty axis; got {tuple(sim.shape)}"
        )
    if not _is_real_number(sim):
        raise ValueError(f"sim must hold real numbers; got dtype {sim.dtype}")
    num_c, num_v = int(sim.shape[0]), int(sim.shape[1])
    k = int(sim.shape[2]) if sim.ndim == 3 else 1
    device = sim.device if isinstance(sim, torch.Tensor) else torch.device("cpu")
    if chunk_size is None:
        chunk = max(1, BLOCK_ELEMENTS // (num_v * k))
    elif isinstance(chunk_size, int | np.integer) and chunk_size > 0:
        chunk = int(chunk_size)
    else:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")

    labels, mask = _positives_source(caption_to_video, num_c, num_v, device)
    _check_coverage(labels, mask, num_v, need_v2t)
    return _Problem(sim, labels, mask, num_c, num_v, k, chunk, device)


def _is_real_number(x: np.ndarray | torch.Tensor) -> bool:
    if isinstance(x, np.ndarray):
        return np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    return not (x.is_complex() or x.dtype == torch.bool)


def _is_bool(x: np.ndarray | torch.Tensor) -> bool:
    return x.dtype == np.bool_ if isinstance(x, np.ndarray) else x.dtype == torch.bool


def _positives_source(
    c2v: Any, num_c: int, num_v: int, device: torch.device
) -> tuple[torch.Tensor | None, np.ndarray | torch.Tensor | None]:
    """Either int labels ``(C,)`` on ``device`` or a bool mask ``(C, V)`` (kept where it lives)."""
    if isinstance(c2v, list | tuple):
        c2v = np.asarray(c2v)
    if not isinstance(c2v, np.ndarray | torch.Tensor):
        raise TypeError(
            f"caption_to_video must be an int array (C,) or a bool mask (C, V); got {type(c2v).__name__}"
        )
    if _is_bool(c2v):
        if tuple(c2v.shape) != (num_c, num_v):
            raise ValueError(
                f"caption_to_video mask has shape {tuple(c2v.shape)}; sim needs (C, V) = {(num_c, num_v)}"
            )
        return None, c2v
    labels = torch.as_tensor(c2v)
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"caption_to_video must hold integer video indices (or be a bool mask); got dtype {c2v.dtype}"
        )
    if tuple(labels.shape) != (num_c,):
        raise ValueError(
            f"caption_to_video has shape {tuple(labels.shape)}; sim has C={num_c} caption rows, "
            f"so it must be ({num_c},) or a ({num_c}, {num_v}) bool mask"
        )
    labels = labels.to(device=device, dtype=torch.int64)
    bad = torch.nonzero((labels < 0) | (labels >= num_v)).flatten()
    if bad.numel():
        first = bad[:5].tolist()
        raise ValueError(
            f"caption_to_video has {bad.numel()} values outside [0, {num_v}) (V={num_v}): "
            f"captions {first} -> {labels[bad[:5]].tolist()}"
        )
    return labels, None


def _check_coverage(
    labels: torch.Tensor | None, mask: np.ndarray | torch.Tensor | None, num_v: int, need_v2t: bool
) -> None:
    """Every caption needs a positive video; for v2t every video needs a caption."""
    if mask is not None:
        has_video = torch.as_tensor(mask.any(1))  # (C,)
        orphans = torch.nonzero(~has_video).flatten()
        if orphans.numel():
            raise ValueError(
                f"caption_to_video mask: {orphans.numel()} captions have no positive video, "
                f"e.g. captions {orphans[:10].tolist()}"
            )
        has_caption = torch.as_tensor(mask.any(0))  # (V,)
    else:
        has_caption = torch.bincount(labels, minlength=num_v) > 0
    silent = torch.nonzero(~has_caption).flatten()
    if need_v2t and silent.numel():
        raise ValueError(
            f"{silent.numel()} of {num_v} videos have no caption in caption_to_video, so their v2t "
            f"rank is undefined: videos {silent[:10].tolist()}; drop them from sim or rank t2v alone"
        )


# --------------------------------------------------------------------------- ranking
