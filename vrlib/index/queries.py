"""Queries of a :class:`~vrlib.index.VideoIndex`: the encoder that may answer them, and their embeddings.

Why apart from the index: this is the only part that runs a model, and the part the command line,
the query browser and the notebook share to open the encoder an index names.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

#: ``--pretrained expert``: the embedded world's expert of the model, as in parameter files.
EXPERT = "expert"


def open_encoder(model: str, pretrained: str | None, device: str | None = None):
    """``load_clip`` for an index: ``pretrained`` may also be the ``random(seed=N)`` an index
    recorded, or ``expert``: the default world's expert of ``model`` (trained first if missing).

    (``load_clip`` hides open_clip's false "initialized randomly" warning for a local file.)
    """
    from vrlib.encoders import load_clip

    if pretrained == EXPERT:
        pretrained = str(expert_checkpoint(model))
    seed = re.fullmatch(r"random\(seed=(\d+)\)", pretrained or "")
    if pretrained is None or seed:
        return load_clip(model, None, device=device, init_seed=int(seed.group(1)) if seed else 0)
    return load_clip(model, pretrained, device=device)


def expert_checkpoint(model: str) -> Path:
    """The default world's expert of ``model`` (``vrlib-tiny``, ``vrlib-tiny-vit32``), built if missing.

    Raises ValueError naming the models that have an expert before any work starts.
    """
    from vrlib.pretrain import PRESETS, ensure_expert

    if model not in PRESETS:
        raise ValueError(
            f"--pretrained expert exists for {', '.join(PRESETS)}, not {model!r}; "
            "give an open_clip tag or a checkpoint file"
        )
    return ensure_expert("default", 0, model=model)


def embed_queries(queries, encoder, manifest: dict, dim: int) -> np.ndarray:
    """``(Q, d)`` float32: one embedding per query, a video's several (k-means) reduced to the
    normalised mean of its centroids. Search uses :func:`embed_query_sets`, which keeps them all."""
    return np.stack([one_embedding(s) for s in embed_query_sets(queries, encoder, manifest, dim)])


def one_embedding(embeddings: np.ndarray) -> np.ndarray:
    """``(d,)``: the only row of ``(1, d)``, or the normalised mean of several ``(m, d)``."""
    if len(embeddings) == 1:
        return embeddings[0]
    mean = embeddings.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def embed_query_sets(queries, encoder, manifest: dict, dim: int) -> list[np.ndarray]:
    """One ``(m, d)`` float32 array per query, in the given order: a text (``str``) has one
    embedding; a video (``Path``) is sampled and aggregated as the manifest says, so under a
    multi-embedding aggregation (k-means) it has ``k``, like the indexed videos.

    Why keep them: the index scores a video by its best embedding for each of them, so a query
    video finds itself first (score 1). Reduced to the mean of its centroids, a query video
    scored below its own reversed twin (0.721 against 0.729).
    """
    items = [queries] if isinstance(queries, str | os.PathLike) else list(queries)
    if not items:
        raise ValueError("no queries")
    empty = [i for i, q in enumerate(items) if isinstance(q, str) and not q.strip()]
    if empty:
        raise ValueError(f"empty query (query {empty[0]} is blank)")
    out: list[np.ndarray] = [np.zeros((1, dim), np.float32)] * len(items)
    text_rows = [i for i, q in enumerate(items) if isinstance(q, str)]
    if text_rows:
        texts = [items[i] for i in text_rows]
        warn_truncated(texts, getattr(encoder, "tokenizer", None))
        embedded = encoder.encode_text(texts).cpu().numpy()  # (T, d)
        for i, emb in zip(text_rows, embedded, strict=True):
            out[i] = emb[None].astype(np.float32)
    video_rows = [i for i, q in enumerate(items) if not isinstance(q, str)]
    if video_rows:
        paths = [Path(items[i]).expanduser() for i in video_rows]
        videos = _embed_videos(paths, encoder, manifest)
        for i, emb in zip(video_rows, videos, strict=True):
            out[i] = emb.reshape(-1, dim).astype(np.float32)  # (m, d)
    return out


def warn_truncated(texts: list[str], tokenizer) -> list[int]:
    """Warn for each text longer than the model reads (its context length): the text tower
    sees only its first tokens, so the rest of a long query is silently ignored otherwise.
    Returns the positions of the truncated texts."""
    n_ctx, encode = getattr(tokenizer, "context_length", None), getattr(tokenizer, "encode", None)
    if n_ctx is None or encode is None:
        return []
    room = n_ctx - 2  # start and end tokens
    long = []
    for i, text in enumerate(texts):
        n = len(encode(text))
        if n > room:
            long.append(i)
            warnings.warn(
                f"query {i} was truncated: it is {n} tokens ({len(text)} characters) and the "
                f"model reads the first {room}; the rest is ignored ({text[:40]!r}...)",
                UserWarning,
                stacklevel=3,
            )
    return long


def _embed_videos(paths: list[Path], encoder, manifest: dict) -> np.ndarray:
    from vrlib.aggregate import aggregate
    from vrlib.data.datasets import VideoItem
    from vrlib.data.sampling import SamplingConfig
    from vrlib.features import extract_frame_features

    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"query video not found: {', '.join(missing)}")
    items = [VideoItem(f"query:{p.resolve()}", p.resolve()) for p in paths]
    feats = extract_frame_features(
        SimpleNamespace(videos=items), encoder, SamplingConfig(**manifest["sampling"]),
        cache_dir=None, on_error="raise", seed=manifest["seed"], progress=False,
    )  # fmt: skip
    agg = manifest["aggregation"]
    return aggregate(feats.features, agg["method"], **agg["options"]).cpu().numpy()  # (Q, [k,] d)
