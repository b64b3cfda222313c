"""The objective: one forward = one loss, and what it trains.

The head's two sides, the false-negative mask and the weighted InfoNCE terms, wrapped as one
module (``_Objective``) so DistributedDataParallel sees every trainable parameter; end-to-end
encoding of pixels and strings with gradients; and the AdamW parameter groups (no decay on
biases, norms, embeddings and the logit scale).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrlib.losses import ContrastiveLoss, gather_side, gather_with_grad, same_video_mask


def _video_kwargs(head: nn.Module, batch: dict[str, Any], what: str) -> dict[str, Tensor]:
    """``video_side`` arguments from a batch, checking the head gets the inputs it needs."""
    kw = {"frames": batch["frames"], "mask": batch["mask"]}
    if getattr(head, "needs_double_rate", False):
        if batch.get("frames_2x") is None:
            raise ValueError(
                f"{_head_name(head)} needs_double_rate but the {what} data has no frames_2x"
            )
        kw.update(frames_2x=batch["frames_2x"], mask_2x=batch["mask_2x"])
    return kw


def _text_kwargs(head: nn.Module, batch: dict[str, Any], what: str) -> dict[str, Tensor]:
    """``text_side`` arguments from a batch, checking the head gets the inputs it needs."""
    kw = {"text": batch["text"]}
    if getattr(head, "needs_tokens", False):
        if batch.get("tokens") is None:
            raise ValueError(f"{_head_name(head)} needs_tokens but the {what} data has no tokens")
        kw.update(tokens=batch["tokens"], token_mask=batch["token_mask"])
    return kw


def text_kwargs(
    head: nn.Module, batch: dict[str, Any], text_side: nn.Module | None, what: str = "training"
) -> dict[str, Tensor]:
    """``head.text_side`` arguments: the trained text side's output, or the cached features."""
    if text_side is None:
        return _text_kwargs(head, batch, what)
    if batch.get("text_inputs") is None:
        raise ValueError(
            f"a text side is trained but the {what} data has no text_inputs "
            "(CachedPairs(..., text_inputs=extract_text_inputs(...)))"
        )
    return text_side(batch["text_inputs"])


def _head_name(head: nn.Module) -> str:
    return getattr(head, "name", "") or type(head).__name__


def _similarity_parts(head: nn.Module, ts: dict, vs: dict) -> list[tuple[float, Tensor]]:
    """[(weight, (Bt, Bv) similarity)] of each term; a head without parts is one term of weight 1."""
    if hasattr(head, "part_weights") and hasattr(head, "similarity_parts"):
        parts = head.similarity_parts(ts, vs)
        return [(float(w), parts[name]) for name, w in head.part_weights().items()]
    return [(1.0, head.similarity(ts, vs))]


class _Objective(nn.Module):
    """Head + loss (+ the CLIP model end to end): ``forward(batch) -> loss``.

    One module so DistributedDataParallel sees every trainable parameter, the temperature
    included, in a single forward.
    """

    def __init__(
        self,
        head: nn.Module,
        loss: ContrastiveLoss,
        encoder: Any = None,
        text_side: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.head, self.loss, self.text_side = head, loss, text_side
        self.encoder = encoder  # a ClipEncoder (plain object); its .model is registered below
        self.clip = encoder.model if encoder is not None else None

    def forward(self, batch: dict[str, Any]) -> Tensor:
        if self.clip is not None:
            batch = encode_batch_end_to_end(
                self.encoder, batch, tokens=getattr(self.head, "needs_tokens", False)
            )
        vs = gather_side(self.head.video_side(**_video_kwargs(self.head, batch, "training")))
        ts = gather_side(self.head.text_side(**text_kwargs(self.head, batch, self.text_side)))
        ignore = same_video_mask(gather_with_grad(batch["video_index"]))  # (B, B) false negatives
        ignore = ignore if ignore.any() else None
        return sum(
            w * self.loss(sim, ignore=ignore) for w, sim in _similarity_parts(self.head, ts, vs)
        )


def encode_batch_end_to_end(
    encoder: Any, batch: dict[str, Any], tokens: bool = False
) -> dict[str, Any]:
    """Pixels and caption strings -> the cached-mode batch (features), with gradients.

    Frames: ``encoder.preprocess_frames`` then ``encoder.model.encode_image`` on the valid frames
    only (B*T, 3, S, S), L2-normalised and scattered back into (B, T, D). Text:
    ``encoder.tokenizer`` then ``encode_text``, L2-normalised. With ``tokens`` the per-token text
    features come from ``encoder.text_token_features`` (vrlib.encoders), with gradients.
    """
    out = dict(batch)
    out["frames"] = _encode_pixels(encoder, batch["pixels"], batch["mask"])
    if "pixels_2x" in batch:
        out["frames_2x"] = _encode_pixels(encoder, batch["pixels_2x"], batch["mask_2x"])
    out.update(_encode_captions(encoder, batch["captions"], tokens))
    return out


def _encode_captions(encoder: Any, captions: list[str], tokens: bool) -> dict[str, Tensor]:
    """text (B, D) L2-normalised, and with ``tokens`` the per-token features (B, L, D) + mask."""
    device = next(encoder.model.parameters()).device
    ids = encoder.tokenizer(list(captions)).to(device)  # (B, L)
    out = {"text": F.normalize(encoder.model.encode_text(ids).float(), dim=-1)}
    if tokens:
        if not hasattr(encoder, "text_token_features"):
            raise NotImplementedError(f"{type(encoder).__name__} has no text_token_features(ids)")
        out["tokens"] = encoder.text_token_features(ids).float()  # (B, L, D), with gradients
        out["token_mask"] = encoder.token_mask(ids)
    return out


def _encode_pixels(encoder: Any, pixels: Tensor, mask: Tensor) -> Tensor:
    b, t = mask.shape
    valid = mask.reshape(-1)  # (B*T,)
    flat = pixels.reshape(b * t, *pixels.shape[2:])[valid.cpu()]  # (n_valid, H, W, 3)
    device = next(encoder.model.parameters()).device
    x = encoder.preprocess_frames(flat).to(device)  # (n_valid, 3, S, S)
    feats = F.normalize(encoder.model.encode_image(x).float(), dim=-1)  # (n_valid, D)
    out = feats.new_zeros(b * t, feats.shape[-1])
    out[valid.to(device)] = feats
    return out.view(b, t, -1)  # (B, T, D)


def _no_decay(name: str, param: Tensor, module: nn.Module) -> bool:
    """Biases, norm scales (1-D), embeddings and the logit scale are not weight-decayed."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.Embedding)
    return (
        param.ndim < 2 or isinstance(module, norms) or "embedding" in name or "logit_scale" in name
    )


def param_groups(
    named: list[tuple[str, nn.Module]], lrs: list[float], weight_decay: float
) -> list[dict]:
    """AdamW groups: (decay, no decay) for each of the (name, module, lr) parts."""
    groups = []
    for (label, module), lr in zip(named, lrs, strict=True):
        owner = {f"{m_name}.{p_name}".lstrip("."): m for m_name, m in module.named_modules()
                 for p_name, _ in m.named_parameters(recurse=False)}  # fmt: skip
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if _no_decay(name, p, owner[name]) else decay).append(p)
        for params, wd, kind in ((decay, weight_decay, "decay"), (no_decay, 0.0, "no_decay")):
            if params:
                groups.append(
                    {"params": params, "lr": lr, "weight_decay": wd, "name": f"{label}/{kind}"}
                )
    return groups


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` (features as float32); strings and pixels for the encoder stay."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = _to_device(v, device)
        elif isinstance(v, Tensor) and not k.startswith("pixels"):
            v = v.to(device, non_blocking=True)
            out[k] = v.float() if v.is_floating_point() else v
        else:
            out[k] = v
    return out


def _make_trainable(encoder: Any) -> None:
    bad = sorted({str(p.dtype) for p in encoder.model.parameters() if p.dtype != torch.float32})
    if bad:
        raise ValueError(
            f"end_to_end training needs fp32 encoder weights, got {bad}; load_clip(..., precision='fp32')"
        )
    encoder.model.requires_grad_(True)
