"""Any model behind ``vrlib eval``: open_clip frame encoders, transformers models, or your own.

Two kinds of model are scored:

- **Frame encoders** (open_clip's :class:`~vrlib.encoders.ClipEncoder`, and transformers' CLIP
  and SigLIP from :mod:`vrlib.encoders.hf`): frames go through the resumable feature cache
  (:func:`vrlib.features.extract_frame_features`) and the preset's aggregation (mean, k-means)
  makes the video embedding, exactly as the studies do.
- **Video-text models**: anything with ``encode_videos(frames)`` and ``encode_texts(texts)``
  (:class:`VideoTextModel`), e.g. X-CLIP or a private model. The preset's frames are decoded
  and handed over per video; the model pools them itself. A user implements it in 20 lines
  (README, "Score your own model").

Why both: a frame encoder's features are reused by every preset and study (cached); a video
model sees all frames of a clip at once, which no cache of frame features can serve.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

EXPERT = "expert"


@runtime_checkable
class VideoTextModel(Protocol):
    """What a model implements to be scored by ``vrlib eval`` (see the module docstring).

    ``encode_videos`` receives one uint8 array ``(T, H, W, 3)`` per video (the preset's frames,
    native size) and returns ``(N, d)`` embeddings; ``encode_texts`` returns ``(N, d)``. Scores
    are dot products, so return L2-normalised rows for cosine similarity. ``name`` goes on the
    card; an optional ``fingerprint`` attribute (e.g. a hash of the weights) too. A model whose
    caption embedding depends on the video (X-CLIP's video-specific prompts) also implements
    ``score(texts, videos) -> (C, V)`` over those two outputs, used instead of dot products.
    """

    name: str

    def encode_videos(self, frames: list[np.ndarray]) -> np.ndarray | torch.Tensor: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray | torch.Tensor: ...


def is_frame_encoder(model: Any) -> bool:
    """Whether ``model`` goes through the frame-feature cache (see the module docstring)."""
    return all(
        hasattr(model, a) for a in ("preprocess_frames", "encode_preprocessed", "fingerprint")
    )


def load_model(
    model: str,
    pretrained: str | None,
    device: str | None = None,
    world_preset: str = "default",
    world_seed: int = 0,
) -> Any:
    """A frame encoder or video-text model by name.

    Args:
        model: an open_clip architecture (``ViT-B-32``, ``vrlib-tiny``), or one of
            ``vrlib.encoders.hf.HF_MODELS`` (``xclip``, ``hf-clip``, ``hf-siglip``: transformers
            models from a local folder).
        pretrained: an open_clip tag, a checkpoint path, a transformers folder for the hf models,
            ``expert`` (the embedded world's pretrained expert of ``model``) or ``random``.
        device: default CUDA when present.
        world_preset, world_seed: whose expert ``pretrained="expert"`` means.

    Raises:
        FileNotFoundError: the expert was never trained (the message says how to train it).
    """
    from vrlib.encoders.hf import HF_MODELS, load_hf_model

    if model in HF_MODELS:
        if pretrained is None:
            raise ValueError(f"--model {model} needs --pretrained FOLDER (a transformers save)")
        return load_hf_model(model, pretrained, device=device)
    from vrlib.encoders import load_clip

    if pretrained == EXPERT:
        from vrlib.paths import expert_path

        path = expert_path(world_preset, world_seed, model)
        if not path.is_file():
            raise FileNotFoundError(
                f"no {model} expert for world {world_preset}-seed{world_seed} at {path}; train it "
                f"with: python -m vrlib pretrain --preset {world_preset} --seed {world_seed} "
                f"--model {model}"
            )
        return load_clip(model, str(path), device=device)
    if pretrained in (None, "random"):
        return load_clip(model, None, device=device)
    return load_clip(model, pretrained, device=device)


def model_record(model: Any, name: str | None = None, pretrained: str | None = None) -> dict:
    """The card's encoder fingerprint: what was loaded and a hash of its weights."""
    fingerprint = getattr(model, "fingerprint", None)
    return {
        "name": name
        or getattr(model, "model_name", None)
        or getattr(model, "name", type(model).__name__),
        "pretrained": pretrained,
        "kind": "frame encoder" if is_frame_encoder(model) else "video-text model",
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "fingerprint": str(fingerprint) if fingerprint is not None else None,
        "source": str(getattr(model, "source", pretrained)),
    }


def embed_frame_encoder(
    ds: Any,
    encoder: Any,
    sampling: Any,
    aggregation: dict[str, Any],
    cache_dir: str | os.PathLike | None,
    on_error: str,
    batch_size: int = 64,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]] | None:
    """Cached frame features -> aggregated video embeddings ``(V, d)`` or ``(V, k, d)``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank first encodes its shard of the videos
    into the cache (``i % world_size == rank``), the ranks meet at a gloo barrier, and rank 0
    then reads every entry from the cache (encoding nothing); other ranks return None.

    Returns the embeddings, their video ids (dataset order) and the videos that failed to decode.
    """
    from vrlib.aggregate import aggregate
    from vrlib.features import extract_frame_features

    extract = dict(
        cache_dir=cache_dir, batch_size=batch_size, num_workers=num_workers, on_error=on_error,
        seed=seed, progress=progress,
    )  # fmt: skip
    rank, world_size = _rank_and_world()
    if world_size > 1:
        if cache_dir is None:
            raise ValueError("sharded evaluation (WORLD_SIZE > 1) merges through the feature cache")
        extract_frame_features(ds, encoder, sampling, rank=rank, world_size=world_size, **extract)
        _barrier()
        if rank != 0:
            return None
    feats = extract_frame_features(ds, encoder, sampling, rank=0, world_size=1, **extract)
    emb = aggregate(feats.features, aggregation["method"], **aggregation.get("options", {}))
    return torch.as_tensor(emb).float(), list(feats.video_ids), list(feats.skipped)


def _rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier() -> None:
    """Wait for every rank (gloo; the process group is made from torchrun's env when absent)."""
    import torch.distributed as dist

    made = not dist.is_initialized()
    if made:
        dist.init_process_group("gloo")
    dist.barrier()
    if made:
        dist.destroy_process_group()


def embed_video_model(
    ds: Any,
    model: VideoTextModel,
    sampling: Any,
    on_error: str,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
    """Decode the preset's frames of each video and let the model embed them, ``batch_size``
    videos per call. Returns embeddings ``(V, d)``, their ids and the videos that failed."""
    from vrlib.data.video import VideoDecodeError
    from vrlib.features.decode import _decode_loader

    ids: list[str] = []
    rows: list[torch.Tensor] = []
    failed: list[tuple[str, str]] = []
    pending: dict[str, list[np.ndarray]] = {}
    ready: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if ready:
            out = torch.as_tensor(np.asarray(_numpy(model.encode_videos([f for _, f in ready]))))
            rows.append(out.float().reshape(len(ready), -1))
            ids.extend(v for v, _ in ready)
            ready.clear()

    bar = tqdm(total=len(ds.videos), desc="video embeddings", unit="video", disable=not progress)
    for record in _decode_loader(ds.videos, sampling, seed, 0):
        vid = record["video_id"]
        if record["error"] is not None:
            if on_error == "raise":
                raise VideoDecodeError(record["path"], record["error"])
            failed.append((vid, record["error"]))
            pending.pop(vid, None)
            bar.update(1)
            continue
        pending.setdefault(vid, []).append(np.asarray(record["frames"]))
        if record["last"]:
            ready.append((vid, np.concatenate(pending.pop(vid))))  # (T, H, W, 3)
            bar.update(1)
            if len(ready) >= batch_size:
                flush()
    flush()
    bar.close()
    return (torch.cat(rows) if rows else torch.zeros(0, 0)), ids, failed


def embed_texts(
    model: Any, texts: Sequence[str], cache_dir: Any, progress: bool = True
) -> torch.Tensor:
    """``(C, d)`` caption embeddings (frame encoders through the text cache)."""
    if is_frame_encoder(model):
        from vrlib.features import extract_text_features

        return extract_text_features(list(texts), model, cache_dir=cache_dir, progress=progress)
    out = [_numpy(model.encode_texts(list(texts[i : i + 256]))) for i in range(0, len(texts), 256)]
    return torch.as_tensor(np.concatenate(out)).float()


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
