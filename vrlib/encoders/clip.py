"""``ClipEncoder``, an open_clip model behind one small interface, and its loader ``load_clip``.

``load_clip`` is the one loader for three weight sources: random init (``pretrained=None``), an
open_clip tag (``"openai"``, ``"laion2b_s34b_b79k"``, ...) and a local checkpoint file.

On top of open_clip it adds batched, tensor-only preprocessing of decoded video frames
(:meth:`ClipEncoder.preprocess_frames`) that does the math of open_clip's PIL transform without a
round trip through PIL per frame, and word-level text features for heads that align words with
frames (CLIP2Video's TAB).

A little over 400 lines on purpose: ``ClipEncoder`` is one interface (about 280 lines) whose
methods share the model's preprocessing and text-tower details; splitting it would scatter them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.factory import get_model_config
from open_clip.pretrained import get_pretrained_cfg

from vrlib.encoders.weights import (
    _load_local_weights,
    _resolve_tag,
    check_model_name,
    check_pretrained,
    quiet_random_init_warning,
)

PRECISIONS = ("fp32", "amp", "amp_bf16", "fp16", "bf16")


_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")  # what a tag may set


def _resize_like_pil(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Antialiased resize of float images (N, C, H, W) in 0..255, matching PIL's ``Image.resize``.

    Why two passes: PIL resamples horizontally, rounds and clips to uint8, then resamples
    vertically. One 2-D interpolation skips the intermediate clipping and differs by up to ~10
    intensity levels near sharp edges; two passes match PIL to within one level.
    """
    h, w = x.shape[-2:]
    if size[1] != w:
        x = F.interpolate(x, size=(h, size[1]), mode=mode, align_corners=False, antialias=True)
        x = x.round().clamp_(0, 255)  # (N, C, H, W')
    if size[0] != h:
        x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
        x = x.round().clamp_(0, 255)  # (N, C, H', W')
    return x


def _default_precision(device: torch.device) -> str:
    """fp16 autocast on CUDA (what CLIP was trained with), plain fp32 on CPU."""
    return "amp" if device.type == "cuda" else "fp32"


def preprocess_frames(
    frames: np.ndarray | torch.Tensor, cfg: dict[str, Any], image_size: int, device: Any = "cpu"
) -> torch.Tensor:
    """:meth:`ClipEncoder.preprocess_frames` as a function of the preprocessing config."""
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # torch warns on read-only arrays (decoders often return them)
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (0..255), got {x.dtype}")
    mode = cfg.get("resize_mode", "shortest")
    interp = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
    s = image_size
    x = x.to(device).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    h, w = x.shape[-2:]
    if mode == "shortest":
        short, long = min(h, w), max(h, w)
        new_long = int(s * long / short)
        size = (s, new_long) if h <= w else (new_long, s)
    elif mode == "squash":
        size = (s, s)
    else:
        raise ValueError(
            f"resize_mode {mode!r} is not supported by preprocess_frames; supported: 'shortest', 'squash'"
        )
    x = _resize_like_pil(x, size, interp)
    top, left = int(round((size[0] - s) / 2.0)), int(round((size[1] - s) / 2.0))
    x = x[..., top : top + s, left : left + s]  # (N, 3, S, S)
    mean = torch.tensor(cfg["mean"], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


class ClipEncoder:
    """A loaded open_clip model plus the tensor-level helpers the studies use.

    Every ``encode_*`` method runs without gradients, in batches, under autocast when the
    precision asks for it, and returns L2-normalised ``float32`` tensors on the CPU (where
    feature caches and metrics live). Train through :attr:`model` directly when gradients are
    needed.

    Attributes:
        model: the open_clip model (``eval()`` mode).
        preprocess: open_clip's own validation transform for this model (PIL image -> tensor).
        tokenizer: open_clip's tokenizer for this model (list of str -> LongTensor (N, L)).
        device: where the model runs.
        model_name: open_clip architecture name.
        model_cfg: the architecture config the model was built from.
        preprocess_cfg: size, mean, std, interpolation and resize mode of :attr:`preprocess`.
        precision: one of :data:`PRECISIONS`.
        source: where the weights came from (``"random(seed=0)"``, a tag, or a file path).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Any,
        tokenizer: Any,
        device: torch.device,
        model_name: str,
        model_cfg: dict,
        precision: str,
        source: str,
    ):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.model_name = model_name
        self.model_cfg = model_cfg
        self.preprocess_cfg = dict(model.visual.preprocess_cfg)
        self.precision = precision
        self.source = source
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"ClipEncoder({self.model_name!r}, source={self.source!r}, device={str(self.device)!r}, precision={self.precision!r})"

    @property
    def embed_dim(self) -> int:
        """Dimension d of the joint embedding space."""
        return int(self.model_cfg["embed_dim"])

    @property
    def image_size(self) -> int:
        """Side S of the square model input."""
        size = self.preprocess_cfg["size"]
        return int(size if isinstance(size, int) else size[0])

    @property
    def fingerprint(self) -> str:
        """SHA-256 of everything that changes an embedding: name, configs, precision, weights.

        Used as the feature-cache key, so two encoders with the same fingerprint give the same
        features. Computed once, on first use (hashing a ViT-B/32 takes about a second).
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            header = {
                "model": self.model_name,
                "config": self.model_cfg,
                "preprocess": self.preprocess_cfg,
                "precision": self.precision,
            }
            h.update(json.dumps(header, sort_keys=True, default=str).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                t = tensor.detach().cpu().contiguous()
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        """Forget the cached fingerprint (call after changing :attr:`model`'s weights in place)."""
        self._fingerprint = None

    # -- context helpers

    def _autocast(self):
        if self.precision == "amp":
            return torch.autocast(self.device.type, dtype=torch.float16)
        if self.precision == "amp_bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _input_dtype(self) -> torch.dtype:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision, torch.float32)

    # -- images

    def preprocess_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Batched tensor version of :attr:`preprocess` for decoded frames.

        Same steps as open_clip's validation transform: resize the short side to S (keeping the
        aspect ratio, long side ``int(S * long / short)`` as torchvision computes it), centre crop
        S x S (torchvision's rounding), scale to [0, 1], normalise with the model's mean and std.
        The resize is antialiased bicubic (or bilinear, as configured), done in PIL's order
        (horizontal, round to uint8, vertical, round); the result matches open_clip's PIL
        transform to within one intensity level (tests/test_encoders.py checks it).

        Args:
            frames: uint8 RGB frames (N, H, W, 3), numpy or torch.

        Returns:
            float32 tensor (N, 3, S, S) on :attr:`device`.
        """
        return preprocess_frames(frames, self.preprocess_cfg, self.image_size, self.device)

    def cpu_preprocessor(self) -> functools.partial:
        """A picklable :meth:`preprocess_frames` on the CPU, without the model.

        Why: extraction runs it in the decoding workers, so that the main process only encodes
        (the workers would otherwise receive a copy of the whole model).
        """
        return functools.partial(
            preprocess_frames,
            cfg=dict(self.preprocess_cfg),
            image_size=self.image_size,
            device="cpu",
        )

    @torch.no_grad()
    def encode_preprocessed(self, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Image embeddings (N, d) from preprocessed pixels (N, 3, S, S), L2-normalised, on CPU."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels must be (N, 3, S, S), got shape {tuple(pixels.shape)}")
        out = []
        for start in range(0, pixels.shape[0], batch_size):
            batch = pixels[start : start + batch_size].to(self.device, self._input_dtype())
            with self._autocast():
                emb = self.model.encode_image(batch)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    @torch.no_grad()
    def encode_frames(
        self, frames: np.ndarray | torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        """Image embeddings (N, d) of uint8 frames (N, H, W, 3), L2-normalised float32 on CPU."""
        n = len(frames)
        out = [
            self.encode_preprocessed(
                self.preprocess_frames(frames[start : start + batch_size]), batch_size
            )
            for start in range(0, n, batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    # -- text

    def _tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        return self.tokenizer(list(texts)).to(self.device)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Text embeddings (N, d), L2-normalised float32 on CPU (texts longer than the context are truncated)."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self._tokenize(texts[start : start + batch_size])
            with self._autocast():
                emb = self.model.encode_text(tokens)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    @torch.no_grad()
    def encode_text_tokens(
        self, texts: Sequence[str], batch_size: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token text features, for heads that align words with frames (CLIP2Video's TAB).

        The text transformer's output at every position, after ``ln_final`` and the
        ``text_projection``: the same computation as ``encode_text`` without the pooling, so the
        feature at the end-of-text token, once L2-normalised, equals ``encode_text``'s output
        (for open_clip's usual argmax/EOT pooling). Token features are NOT normalised.

        Returns:
            tokens: float32 (N, L, d) on CPU, L = the model's context length.
            mask: bool (N, L), True at the start token, the words and the end-of-text token
            (positions up to and including EOT); False on the padding after it.
        """
        feats, masks = [], []
        for start in range(0, len(texts), batch_size):
            ids = self._tokenize(texts[start : start + batch_size])  # (B, L)
            with self._autocast():
                x = self.text_token_features(ids)  # (B, L, d)
            feats.append(x.float().cpu())
            masks.append(self.token_mask(ids).cpu())
        if not feats:
            n_ctx = self.model_cfg["text_cfg"].get("context_length", 77)
            return torch.empty(0, n_ctx, self.embed_dim), torch.empty(0, n_ctx, dtype=torch.bool)
        return torch.cat(feats), torch.cat(masks)

    def _text_tower(self) -> dict[str, Any]:
        """The text modules of a CLIP (tower unpacked onto the model) or CustomTextCLIP model."""
        m = self.model
        if hasattr(m, "token_embedding"):
            return {
                "embed": lambda ids: (
                    m.token_embedding(ids).to(m.transformer.get_cast_dtype())
                    + m.positional_embedding.to(m.transformer.get_cast_dtype())
                ),
                "attn_mask": m.attn_mask,
                "transformer": m.transformer,
                "ln_final": m.ln_final,
                "projection": m.text_projection,
                "pool_type": m.text_pool_type,
                "eos_id": getattr(m, "text_eos_id", None),
            }
        text = getattr(m, "text", None)
        if text is not None and hasattr(text, "_embeds") and getattr(text, "cls_emb", None) is None:
            return {
                "embed": lambda ids: text._embeds(ids)[0],
                "attn_mask": None,  # filled per batch below: _embeds builds it
                "transformer": text.transformer,
                "ln_final": text.ln_final,
                "projection": text.text_projection,
                "pool_type": text.pool_type,
                "eos_id": getattr(text, "eos_id", None),
                "module": text,
            }
        raise NotImplementedError(
            f"encode_text_tokens: {self.model_name} has no open_clip TextTransformer text tower (HF text models are not supported)"
        )

    def text_token_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Per-token features (B, L, d) of token ids (B, L), WITH gradients (for end-to-end training).

        What :meth:`encode_text_tokens` returns, without batching, no_grad, autocast or CPU copy.
        """
        tower = self._text_tower()
        if "module" in tower:
            x, attn_mask = tower["module"]._embeds(ids)
        else:
            x, attn_mask = tower["embed"](ids), tower["attn_mask"]
        x = tower["transformer"](x, attn_mask=attn_mask)  # (B, L, width)
        x = tower["ln_final"](x)
        proj = tower["projection"]
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj  # (B, L, d)

    def token_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """True up to and including the end-of-text token (or on all non-padding tokens)."""
        tower = self._text_tower()
        positions = torch.arange(ids.shape[1], device=ids.device)
        if tower["pool_type"] == "argmax":  # CLIP's EOT has the largest id in the vocabulary
            eot = ids.argmax(dim=-1)
        elif tower["pool_type"] == "eos" and tower["eos_id"] is not None:
            eot = (ids == tower["eos_id"]).int().argmax(dim=-1)
        else:
            return ids != 0
        return positions[None, :] <= eot[:, None]  # (B, L)


def load_clip(
    model_name: str,
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    init_seed: int = 0,
    cache_dir: str | None = None,
) -> ClipEncoder:
    """Build an open_clip model and wrap it as a :class:`ClipEncoder`.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``), e.g. ``"ViT-B-32"``
            or ``"vrlib-tiny"``.
        pretrained: ``None`` for random weights; an open_clip tag (``open_clip.list_pretrained()``),
            used from the local cache or downloaded when the network is reachable; or a path to a
            local checkpoint (.safetensors, .bin, .pt/.pth; state dict, ``{"model": ...}`` vrlib
            checkpoint, or ``{"state_dict": ...}``).
        device: ``"cuda"`` when available, else ``"cpu"``, by default.
        precision: one of :data:`PRECISIONS`; default ``"amp"`` (fp16 autocast) on CUDA, ``"fp32"``
            on CPU. ``"amp"`` needs CUDA.
        init_seed: seed of the random initialisation, so that ``pretrained=None`` gives the same
            weights (and fingerprint) every time; the global RNG is left untouched.
        cache_dir: open_clip's download cache (default: huggingface_hub's and ``~/.cache/clip``).

    Raises:
        WeightsUnavailableError: a tag whose weights are not cached while HF_HUB_OFFLINE is set or
            the download host does not answer within a second.
        FileNotFoundError: ``pretrained`` looks like a path and no such file exists.
        ValueError: unknown model, tag or precision (the message lists valid choices);
            :class:`CheckpointMismatchError` when a file does not fit the architecture.
    """
    check_model_name(model_name)
    device = torch.device(
        device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    precision = precision or _default_precision(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "amp" and device.type != "cuda":
        raise ValueError(
            "precision 'amp' (fp16 autocast) needs a CUDA device; use 'fp32' or 'amp_bf16' on CPU"
        )

    kwargs: dict[str, Any] = {"device": device, "precision": precision, "cache_dir": cache_dir}
    local_file: Path | None = None
    if pretrained is None:
        source = f"random(seed={init_seed})"
    elif isinstance(pretrained, str) and get_pretrained_cfg(model_name, pretrained):
        source = pretrained
        # A cached file is handed to open_clip as a path, so it never touches the network; the
        # tag's preprocessing and activation (OpenAI's QuickGELU) are applied either way.
        tag_cfg = get_pretrained_cfg(model_name, pretrained)
        kwargs["pretrained"] = _resolve_tag(model_name, pretrained, cache_dir) or pretrained
        kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
        kwargs.update({f"image_{k}": tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg})
    else:
        local_file = check_pretrained(model_name, pretrained)
        source = str(local_file)

    quiet = quiet_random_init_warning() if local_file is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), quiet:
        torch.manual_seed(init_seed)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, **kwargs)
    if local_file is not None:
        _load_local_weights(model, local_file)

    model_cfg = get_model_config(model_name)
    if kwargs.get("force_quick_gelu"):
        model_cfg["quick_gelu"] = True
    tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
    return ClipEncoder(
        model, preprocess, tokenizer, device, model_name, model_cfg, precision, source
    )
