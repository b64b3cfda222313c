"""transformers' image-text and video-text models from a local folder (pip extra ``hf``).

- ``hf-clip`` (``CLIPModel``) and ``hf-siglip`` (``SiglipModel``) are frame encoders with the
  interface of :class:`~vrlib.encoders.ClipEncoder` that feature extraction uses
  (``preprocess_frames``, ``encode_preprocessed``, ``encode_text``, ``fingerprint``,
  ``image_size``), so their frame features are cached and aggregated like open_clip's.
- ``xclip`` (``XCLIPModel``) is video-native: ``encode_videos`` embeds the frames of a clip
  together (the cross-frame transformer's video embedding) and keeps the frame-averaged patch
  features that X-CLIP's video-specific prompt generator reads; ``encode_texts`` keeps the
  projected caption embedding before normalisation. ``score`` then does what ``XCLIPModel.forward``
  does for each (video, caption) pair: the caption's embedding plus the prompt generated from that
  video, normalised, dotted with the video's embedding (``logits_per_text`` without the logit
  scale). Why: a caption's X-CLIP embedding depends on the video it is scored against, so plain
  dot products of independent embeddings are not X-CLIP's scores.

Why local folders only: no model hub is reachable where this workbench is built; a model is a
directory saved once with ``save_pretrained`` (model and processor), loaded with
``local_files_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HF_MODELS = {"hf-clip": "CLIPModel", "hf-siglip": "SiglipModel", "xclip": "XCLIPModel"}


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise ImportError(
            "transformers models need the 'transformers' package: pip install 'vrlib[hf]'"
        ) from e
    return transformers


def load_hf_model(name: str, folder: str | os.PathLike, device: str | None = None) -> Any:
    """Load ``name`` (a key of :data:`HF_MODELS`) from a ``save_pretrained`` folder.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        FileNotFoundError: ``folder`` is not a directory (nothing is downloaded).
    """
    if name not in HF_MODELS:
        raise ValueError(f"unknown transformers model {name!r}; valid: {', '.join(HF_MODELS)}")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{name}: {path} is not a directory; save the model and its processor there with "
            "save_pretrained where a hub is reachable (nothing is downloaded)"
        )
    tf = _require_transformers()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = getattr(tf, HF_MODELS[name]).from_pretrained(path, local_files_only=True).eval()
    processor = tf.AutoProcessor.from_pretrained(path, local_files_only=True)
    wrapper = XClipModel if name == "xclip" else HFFrameEncoder
    return wrapper(name, model.to(dev), processor, dev, str(path))


def _features(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor, or (newer transformers) an output with ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _state_sha(model: torch.nn.Module, header: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class _HFBase:
    def __init__(self, name: str, model: Any, processor: Any, device: torch.device, source: str):
        self.name = self.model_name = name
        self.model, self.processor, self.device, self.source = model, processor, device, source
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the class, the config and the weights (the feature cache's key)."""
        if self._fingerprint is None:
            header = {"class": type(self.model).__name__, "config": self.model.config.to_dict()}
            self._fingerprint = _state_sha(self.model, header)
        return self._fingerprint

    def _text_inputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        # SigLIP was trained on max_length padding; its text tower reads the last position
        padding = "max_length" if "Siglip" in type(self.model).__name__ else True
        tok = self.processor.tokenizer(
            list(texts), padding=padding, truncation=True, return_tensors="pt"
        )
        return {
            k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")
        }

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """``(N, d)`` L2-normalised caption embeddings."""
        out = [
            _features(self.model.get_text_features(**self._text_inputs(texts[i : i + batch_size])))
            for i in range(0, len(texts), batch_size)
        ]
        return F.normalize(torch.cat(out).float(), dim=-1)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.encode_text(texts)


class HFFrameEncoder(_HFBase):
    """transformers CLIP / SigLIP as a frame encoder (the interface feature extraction uses)."""

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def preprocess_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> ``(T, 3, S, S)`` with the model's own image processor."""
        images = [np.asarray(f) for f in np.asarray(frames)]
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device)

    @torch.no_grad()
    def encode_preprocessed(self, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """``(T, d)`` L2-normalised frame embeddings."""
        out = [
            _features(
                self.model.get_image_features(
                    pixel_values=pixels[i : i + batch_size].to(self.device)
                )
            )
            for i in range(0, len(pixels), batch_size)
        ]
        return F.normalize(torch.cat(out).float(), dim=-1)

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        return self.encode_preprocessed(self.preprocess_frames(frames))


class XClipModel(_HFBase):
    """X-CLIP as a :class:`~vrlib.evaluation.models.VideoTextModel` with its own ``score`` (see
    the module docstring): a video's row is its embedding followed by its prompt features."""

    @property
    def num_frames(self) -> int:
        return int(self.model.config.vision_config.num_frames)

    @property
    def _dim(self) -> int:
        return int(self.model.config.projection_dim)

    @torch.no_grad()
    def encode_videos(self, frames: list[np.ndarray]) -> torch.Tensor:
        """One uint8 ``(T, H, W, 3)`` per video -> ``(N, (1 + P) * d)``: the L2-normalised video
        embedding, then the ``P`` frame-averaged patch features of the prompt generator. Each
        clip is resampled to the model's ``num_frames`` (evenly spaced, first and last kept)."""
        clips = []
        for video in frames:
            keep = np.round(np.linspace(0, len(video) - 1, self.num_frames)).astype(int)
            pixels = self.processor.image_processor(
                images=[np.asarray(f) for f in video[keep]], return_tensors="pt"
            )["pixel_values"]
            clips.append(pixels.reshape(-1, *pixels.shape[-3:]))  # (num_frames, 3, S, S)
        batch = torch.stack(clips).to(self.device)  # (N, num_frames, 3, S, S)
        n, t = batch.shape[:2]
        m = self.model
        vision = m.vision_model(pixel_values=batch.flatten(0, 1))
        per_frame = m.visual_projection(vision.pooler_output).view(n, t, -1)
        video = F.normalize(_features(m.mit(per_frame)).float(), dim=-1)  # (N, d)
        patches = m.prompts_visual_layernorm(vision.last_hidden_state[:, 1:, :])
        patches = (patches @ m.prompts_visual_projection).view(n, t, -1, self._dim).mean(dim=1)
        return torch.cat([video[:, None, :], patches.float()], dim=1).flatten(1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """``(N, d)`` projected caption embeddings, not normalised (the prompt is added first)."""
        out = [
            _features(self.model.get_text_features(**self._text_inputs(texts[i : i + 256])))
            for i in range(0, len(texts), 256)
        ]
        return torch.cat(out).float()

    @torch.no_grad()
    def score(self, texts: torch.Tensor, videos: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """``(C, V)`` X-CLIP scores of ``encode_texts`` rows against ``encode_videos`` rows:
        per video, its prompt is added to every caption, which is then normalised."""
        d = self._dim
        videos = videos.reshape(len(videos), -1, d).to(self.device)
        texts = texts.to(self.device)
        cols = []
        for start in range(0, len(videos), chunk):
            part = videos[start : start + chunk]  # (b, 1 + P, d)
            text = texts.unsqueeze(0).expand(len(part), -1, -1)  # (b, C, d)
            text = F.normalize(text + self.model.prompts_generator(text, part[:, 1:, :]), dim=-1)
            cols.append(torch.einsum("bd,bcd->cb", part[:, 0, :], text))
        return torch.cat(cols, dim=1).float().cpu()
