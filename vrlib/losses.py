"""Contrastive loss and the cross-rank gather it needs.

Why this file owns ``torch.distributed``: models never talk to other processes (STYLE.md). The
training engine computes each rank's "sides" (dicts of batch-first tensors, see vrlib/models),
gathers them here with gradients, and computes one similarity matrix over the global batch.

Gradient scaling under DistributedDataParallel (the point of ``gather_with_grad``):
every rank computes the *same* global loss ``L`` on the full ``(W*B, W*B)`` similarity matrix of
the gathered global batch (open_clip's ``gather_with_grad=True, local_loss=False``). In the
backward pass rank ``r`` receives ``dL/d(gathered)`` for all ``W*B`` rows; summing these over the
``W`` ranks (``all_reduce(SUM)``) and keeping rank ``r``'s slice gives ``W * dL/d(e_r)`` for its own
embeddings ``e_r``, because all ``W`` copies of ``L`` are identical. DDP then *averages* parameter
gradients over ranks (divides by ``W``), so the result equals ``dL/dθ`` of one process holding the
whole global batch — tested in tests/test_train.py with two gloo processes. The same sum-then-slice
rule would also be right for a "local rows vs global columns" loss (sum over ranks of local losses
= ``W`` times the global mean); we use the full matrix because it needs one similarity call, works
for any head's ``similarity`` unchanged, and the redundant ``(W*B)^2`` similarity costs little next
to the encoders.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ContrastiveLoss",
    "gather_side",
    "gather_with_grad",
    "is_distributed",
    "same_video_mask",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_gather(t: Tensor) -> list[Tensor]:
    """``dist.all_gather`` into a list; bools travel as uint8 (gloo has no bool all_gather)."""
    is_bool = t.dtype == torch.bool
    src = t.to(torch.uint8) if is_bool else t
    src = src.contiguous()
    out = [torch.empty_like(src) for _ in range(dist.get_world_size())]
    dist.all_gather(out, src)
    return [o.bool() for o in out] if is_bool else out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums the incoming gradient over ranks and keeps our slice."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        ctx.rank, ctx.n = dist.get_rank(), t.shape[0]
        return torch.cat(_all_gather(t), dim=0)  # (W*B, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` (B, ...) of every rank along dim 0 -> (W*B, ...), keeping gradients.

    Identity when torch.distributed is not initialised or has one rank, so the same code runs in a
    notebook. Every rank must pass the same shape. Rank ``r``'s rows are ``[r*B, (r+1)*B)``. The
    backward pass returns the *sum over ranks* of the gradient w.r.t. this rank's rows: right when
    each rank computes the same global loss and DDP averages parameter gradients (module
    docstring). Integer and bool tensors are gathered without autograd.
    """
    if not is_distributed():
        return t
    if not (t.is_floating_point() or t.is_complex()):
        return torch.cat(_all_gather(t), dim=0)
    return _GatherWithGrad.apply(t)


def gather_side(side: dict[str, Tensor]) -> dict[str, Tensor]:
    """``gather_with_grad`` applied to every tensor of a head's side dict (all batch-first)."""
    return {k: gather_with_grad(v) for k, v in side.items()}


def same_video_mask(video_index: Tensor) -> Tensor:
    """(B,) video indices -> (B, B) bool, True where two *different* items show the same video.

    Such pairs are false negatives for both directions of InfoNCE; ``ContrastiveLoss`` drops them
    from the softmax when given this mask as ``ignore``.
    """
    same = video_index[:, None] == video_index[None, :]  # (B, B)
    return same & ~torch.eye(len(video_index), dtype=torch.bool, device=video_index.device)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE with CLIP's learnable temperature, or a fixed one.

    ``logit_scale`` is stored as a log, initialised to ``log(1 / temperature)`` (CLIP: 0.07) and
    the scale used is ``exp(logit_scale)`` clamped at ``max_scale`` (100, as CLIP). The engine
    also calls ``clamp_()`` after each optimiser step so the stored value stays in range
    (CLIP/open_clip do this in-place clamp; the forward clamp alone would freeze its gradient).

    The papers' settings:

    - CLIP4Clip and CLIP2Video fine-tune from CLIP's own logit scale (100 for OpenAI's weights)
      and clamp it at 100 after every step (``torch.clamp_(logit_scale, max=log(100))``):
      ``ContrastiveLoss.from_logit_scale(clip_model.logit_scale)`` plus ``clamp_()``.
    - The same at a fixed scale of 100 (a cached head has no pretrained scale to inherit):
      ``ContrastiveLoss(temperature=0.01, learnable=False)``.
    """

    def __init__(
        self, temperature: float = 0.07, learnable: bool = True, max_scale: float = 100.0
    ) -> None:
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.max_log_scale = math.log(max_scale)
        init = math.log(1.0 / temperature)
        if init > self.max_log_scale + 1e-9:  # tolerance: exp/log round trips of 100
            raise ValueError(
                f"temperature {temperature} gives scale {1 / temperature:.1f} > max_scale {max_scale}"
            )
        init = torch.tensor(min(init, self.max_log_scale))
        self.logit_scale = nn.Parameter(init, requires_grad=learnable)

    @classmethod
    def from_logit_scale(
        cls, logit_scale: float | Tensor, learnable: bool = True, max_scale: float = 100.0
    ) -> ContrastiveLoss:
        """Start from an encoder's own (log) logit scale, e.g. ``clip_model.logit_scale``.

        Why the clamp here: a pretrained CLIP stores ``log(100)`` in float32, which rounds a
        little above ``log(100)``; it is clamped into ``[0, log(max_scale)]`` as ``clamp_`` would.
        """
        value = float(torch.as_tensor(logit_scale).detach().float())
        if not math.isfinite(value):
            raise ValueError(f"logit_scale must be finite, got {value}")
        value = min(max(value, 0.0), math.log(max_scale))
        return cls(temperature=math.exp(-value), learnable=learnable, max_scale=max_scale)

    def scale(self) -> Tensor:
        """The multiplier applied to cosine similarities: exp(logit_scale) <= max_scale."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the stored log scale in [0, log(max_scale)] (called after each optimiser step)."""
        self.logit_scale.clamp_(0.0, self.max_log_scale)

    def forward(
        self, sim: Tensor, labels: Tensor | None = None, ignore: Tensor | None = None
    ) -> Tensor:
        """Mean of the text->video and video->text cross-entropies.

        Args:
            sim: (Bt, Bv) cosine similarities, rows = texts, columns = videos.
            labels: (Bt,) column of each text's positive video, all distinct. Default
                ``arange(Bt)`` (square batch, positives on the diagonal). Video->text runs over
                the labelled columns only, each against all Bt texts.
            ignore: optional (Bt, Bv) bool of pairs to leave out of both softmaxes (false
                negatives such as a second copy of the same video, see ``same_video_mask``);
                must be False at the positives.

        Returns:
            Scalar loss in float32 (computed in float32 even under autocast).
        """
        if sim.ndim != 2:
            raise ValueError(f"sim must be (Bt, Bv), got shape {tuple(sim.shape)}")
        n_text, n_video = sim.shape
        if labels is None:
            if n_text != n_video:
                raise ValueError(f"sim is {n_text}x{n_video}: pass labels for a non-square batch")
            labels = torch.arange(n_text, device=sim.device)
        elif labels.shape != (n_text,) or len(torch.unique(labels)) != n_text:
            raise ValueError(
                f"labels must be {n_text} distinct column indices, got {labels.tolist()}"
            )
        logits = self.scale() * sim.float()  # (Bt, Bv)
        if ignore is not None:
            rows = torch.arange(n_text, device=sim.device)
            if ignore[rows, labels].any():
                raise ValueError("ignore must not mask a positive pair")
            logits = logits.masked_fill(ignore, float("-inf"))
        t2v = F.cross_entropy(logits, labels)
        v2t_logits = logits[:, labels].T  # (Bt, Bt): row k = all texts vs text k's video
        v2t = F.cross_entropy(v2t_logits, torch.arange(n_text, device=sim.device))
        return (t2v + v2t) / 2
