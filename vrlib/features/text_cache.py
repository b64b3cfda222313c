"""The cached inputs of a text side trained on cached captions: ``extract_text_inputs``.

Why: a trained text side (``vrlib.models.build_text_side``) reads the frozen tower's embedding,
word tokens and, for ``last_blocks``, the hidden states at one block's input. Computing them is
a full pass of the text tower over every caption of a split, so it is done once and cached like
``extract_text_features``: one atomic file per key, checked by checksum, recomputed if damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from vrlib.encoders.tower_inputs import text_inputs
from vrlib.features.cache import CACHE_FORMAT, _load_text_cache, _sha, _text_checksum
from vrlib.io import atomic_save_torch


def extract_text_inputs(
    texts: Sequence[str],
    encoder: Any,
    *,
    hidden_block: int | None = None,
    cache_dir: str | os.PathLike | None,
    trim: bool = False,
    batch_size: int = 256,
) -> dict[str, Tensor]:
    """``vrlib.encoders.tower_inputs.text_inputs`` for ``texts``, cached on disk.

    Args:
        texts: the captions, in the order the training data indexes them.
        encoder: a ``ClipEncoder`` with an open_clip causal text tower.
        hidden_block: also cache the hidden states at the input of this block
            (``side.hidden_block`` of a ``last_blocks`` side); None: not needed.
        cache_dir: cache root; the file is ``cache_dir/text_inputs/<key[:20]>.pt``, the key hashing
            the cache format, the encoder fingerprint, ``hidden_block``, ``trim`` and the SHA-256
            of the texts. None: compute without caching.
        trim: cut sequences to the longest caption (see ``text_inputs``).
        batch_size: captions per tower call (does not change the numbers' key).

    Returns:
        CPU tensors (C, ...): ``"text"``, ``"tokens"``, ``"token_mask"`` and with
        ``hidden_block`` ``"hidden"``, as ``text_inputs`` returns them.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str (wrap a single caption in a list)")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    key = _sha(
        {
            "format": CACHE_FORMAT,
            "kind": "text_inputs",
            "encoder": str(encoder.fingerprint),
            "hidden_block": hidden_block,
            "trim": bool(trim),
            "texts": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
        }
    )
    names = sorted(
        ["text", "tokens", "token_mask"] + (["hidden"] if hidden_block is not None else [])
    )
    path = Path(cache_dir) / "text_inputs" / f"{key[:20]}.pt" if cache_dir is not None else None
    tensors = _load_text_cache(path, key, len(texts)) if path else None
    if tensors is not None and len(tensors) == len(names):
        return dict(zip(names, tensors, strict=True))
    out = text_inputs(encoder, texts, hidden_block=hidden_block, batch_size=batch_size, trim=trim)
    if path:
        tensors = [out[k].contiguous() for k in names]
        blob = {"key": key, "tensors": tensors, "checksum": _text_checksum(tensors)}
        atomic_save_torch(path, blob)
    return {k: out[k] for k in names}
