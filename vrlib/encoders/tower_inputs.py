"""Cached text-tower inputs: what a text side trained on cached captions reads.

Why here, in ``encoders``: these tensors are computed from the encoder's text tower, and the
feature cache (``vrlib.features.extract_text_inputs``), which sits below the models, stores
them. The text sides that consume them live in ``vrlib.models.text_side``.

``text_inputs(encoder, captions, hidden_block=None)`` runs the tower once and returns the
embedding, the per-token features, the token mask and (optionally) the hidden states at the
input of one block; ``eot_index`` finds the end-of-text position; ``text_tower`` unpacks an
open_clip causal text tower; ``run_blocks`` and ``pool_and_project`` are the two pieces a
trained copy of the last blocks reuses so that it matches the tower bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def _l2norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """L2-normalise the last dimension, as ``vrlib.models.base.l2norm`` does (same eps)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def text_tower(model: nn.Module) -> dict[str, Any]:
    """The public submodules of an open_clip text tower that the cached text sides need.

    Works for ``open_clip.CLIP`` (tower unpacked onto the model) and for a ``model.text``
    ``TextTransformer`` without a class token. Only CLIP's EOT pooling (``argmax``/``eos``) is
    supported: the text embedding is the output at the EOT token, which ``token_mask`` marks as
    the last valid position.

    Raises:
        NotImplementedError: another text tower (HF text models, class-token pooling).
    """
    tower = model if hasattr(model, "token_embedding") else getattr(model, "text", None)
    pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", None))
    if (
        tower is None
        or not hasattr(tower, "token_embedding")
        or getattr(tower, "cls_emb", None) is not None
        or pool not in ("argmax", "eos")
    ):
        raise NotImplementedError(
            f"{type(model).__name__}: cached text sides need an open_clip causal text transformer "
            f"pooled at the end-of-text token (got pool type {pool!r})"
        )
    return {
        "token_embedding": tower.token_embedding,
        "positional_embedding": tower.positional_embedding,
        "blocks": tower.transformer.resblocks,
        "batch_first": getattr(tower.transformer, "batch_first", True),
        "ln_final": tower.ln_final,
        "projection": tower.text_projection,
        "attn_mask": tower.attn_mask,
        "pool": pool,
        "eos_id": getattr(tower, "text_eos_id", getattr(tower, "eos_id", None)),
    }


def _project(x: Tensor, projection: nn.Module | Tensor | None) -> Tensor:
    """Apply a text projection stored as an ``nn.Linear``, a (W, D) matrix or nothing."""
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Module) else x @ projection


def pool_and_project(
    x: Tensor, eot: Tensor, projection: nn.Module | Tensor | None
) -> tuple[Tensor, Tensor]:
    """(B, L, W) after ``ln_final`` -> text (B, D) and tokens (B, L, D).

    The text is pooled at EOT *before* projecting, as open_clip's ``encode_text`` does: the
    same matrix product on the same rows, so the result matches it bit for bit (projecting all
    tokens and then pooling rounds differently).
    """
    rows = torch.arange(x.shape[0], device=x.device)
    return _project(x[rows, eot], projection), _project(x, projection)


def run_blocks(
    x: Tensor, blocks: Sequence[nn.Module], attn_mask: Tensor, batch_first: bool
) -> Tensor:
    """Residual blocks over (B, L, W) hidden states under the (L, L) causal mask."""
    if not batch_first:
        x = x.transpose(0, 1)  # (L, B, W)
    for block in blocks:
        x = block(x, attn_mask=attn_mask)
    return x if batch_first else x.transpose(0, 1)  # (B, L, W)


def eot_index(token_mask: Tensor) -> Tensor:
    """(B, L) prefix mask (True up to and including EOT) -> (B,) position of the EOT token.

    Raises ValueError when a row is empty or is not a prefix (then the last valid position is
    not the EOT token and the pooled feature would be wrong).
    """
    count = token_mask.sum(dim=1)  # (B,)
    prefix = torch.arange(token_mask.shape[1], device=token_mask.device)[None, :] < count[:, None]
    bad = ((count == 0) | (prefix != token_mask).any(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"token_mask rows {bad} are not a non-empty prefix (True up to and including the "
            "end-of-text token)"
        )
    return count - 1


@torch.no_grad()
def text_inputs(
    encoder: Any,
    captions: Sequence[str],
    hidden_block: int | None = None,
    batch_size: int = 256,
    trim: bool = False,
) -> dict[str, Tensor]:
    """Everything a cached text side may read, for a list of captions (computed once per split).

    Runs the encoder's text tower once, in its own precision, without gradients; returns float32.

    Args:
        encoder: a ``vrlib.encoders.ClipEncoder`` (its ``model``, ``tokenizer`` and ``device``).
        captions: the split's captions, in the order the training data indexes them.
        hidden_block: also return the hidden states at the input of this block (``L - N`` for
            ``last_blocks`` with N blocks: ``side.hidden_block``); None: not needed.
        batch_size: captions per tower call.
        trim: cut sequences to the longest caption (EOT included) instead of the context length.
            Saves memory and time (a step of ``last_blocks`` runs over fewer positions) and
            changes nothing but float rounding: with the causal mask the positions after EOT
            never reach the positions up to it, yet attention over a shorter row rounds
            differently (about 1e-7). Off: ``last_blocks`` reproduces the frozen text bit for bit.

    Returns:
        CPU tensors, row i for caption i, sequences of ``L'`` tokens (the context length, or the
        longest caption with ``trim``):
        ``"text"`` (C, D) L2-normalised embedding, ``"tokens"`` (C, L', D) per-token features
        after ``ln_final`` and the projection (not normalised), ``"token_mask"`` (C, L') bool,
        True up to and including EOT, and with ``hidden_block`` ``"hidden"`` (C, L', W).
    """
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError("captions must be a list of str")
    if not captions:
        raise ValueError("captions is empty: nothing to encode")
    tower = text_tower(encoder.model)
    depth = len(tower["blocks"])
    if hidden_block is not None and not 0 <= hidden_block < depth:
        raise ValueError(f"hidden_block must be in [0, {depth}) for this tower, got {hidden_block}")
    parts: list[dict[str, Tensor]] = []
    for start in range(0, len(captions), batch_size):
        ids = encoder.tokenizer(list(captions[start : start + batch_size])).to(encoder.device)
        parts.append(_tower_outputs(tower, ids, hidden_block))
    length = parts[0]["token_mask"].shape[1]
    if trim:
        length = max(int(p["token_mask"].sum(1).max()) for p in parts)  # longest caption + EOT
    out = {"text": torch.cat([p["text"] for p in parts])}  # (C, D)
    for key in parts[0].keys() - {"text"}:
        out[key] = torch.cat([p[key][:, :length] for p in parts])  # (C, L', ...)
    return out


def _tower_outputs(
    tower: dict[str, Any], ids: Tensor, hidden_block: int | None
) -> dict[str, Tensor]:
    """One batch of token ids (B, L) through the tower, keeping what ``text_inputs`` returns."""
    count = _prefix_length(ids, tower)
    mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < count[:, None]  # (B, L)
    dtype = next(tower["blocks"][0].parameters()).dtype  # the tower's own precision
    x = tower["token_embedding"](ids).to(dtype)  # (B, L, W)
    x = x + tower["positional_embedding"].to(dtype)
    attn_mask = tower["attn_mask"]
    out: dict[str, Tensor] = {}
    for i, block in enumerate(tower["blocks"]):
        if i == hidden_block:
            out["hidden"] = x.float().cpu()
        x = run_blocks(x, [block], attn_mask, tower["batch_first"])
    text, tokens = pool_and_project(tower["ln_final"](x), count - 1, tower["projection"])
    out["text"] = _l2norm(text.float()).cpu()
    out["tokens"], out["token_mask"] = tokens.float().cpu(), mask.cpu()
    return out


def _prefix_length(ids: Tensor, tower: dict[str, Any]) -> Tensor:
    """(B,) tokens up to and including EOT, found as the tower's own pooling finds it."""
    if tower["pool"] == "eos":
        return (ids == tower["eos_id"]).int().argmax(dim=-1) + 1
    return ids.argmax(dim=-1) + 1  # CLIP's EOT has the largest id in the vocabulary
