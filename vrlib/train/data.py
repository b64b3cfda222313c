"""The pairs a run trains and evaluates on, and the batch sampler that packs them.

``CachedPairs`` holds precomputed frame / caption features (mode ``"cached"``); ``EndToEndPairs``
holds uint8 pixels and caption strings for a trainable encoder (mode ``"end_to_end"``). Both give
``video_batch`` / ``text_batch`` for evaluation. ``ContrastiveBatchSampler`` draws epoch ``e``
from ``numpy.random.default_rng((seed, e))`` and packs global batches with no video twice, each
rank taking its slice of the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vrlib.train.config import TrainConfig


def _as_index(caption_to_video: Any, n_videos: int, n_captions: int, what: str) -> Tensor:
    c2v = torch.as_tensor(np.asarray(caption_to_video), dtype=torch.long)
    if c2v.shape != (n_captions,):
        raise ValueError(
            f"{what}: caption_to_video must have shape ({n_captions},), got {tuple(c2v.shape)}"
        )
    if n_captions and (c2v.min() < 0 or c2v.max() >= n_videos):
        raise ValueError(f"{what}: caption_to_video holds indices outside [0, {n_videos})")
    return c2v


def _pad_frames(frames: Any, mask: Any, what: str) -> tuple[Tensor, Tensor]:
    """A list of (T_i, D) or a padded (N, T, D) + mask -> padded (N, T, D), bool mask (N, T)."""
    if isinstance(frames, (list, tuple)):
        if mask is not None:
            raise ValueError(f"{what}: give a mask only with a padded (N, T, D) tensor")
        if not frames:
            raise ValueError(f"{what}: no videos")
        items = [torch.as_tensor(f) for f in frames]
        bad = [i for i, f in enumerate(items) if f.ndim != 2 or f.shape[0] == 0]
        if bad:
            raise ValueError(f"{what}: items {bad[:5]} are not non-empty (T_i, D) tensors")
        dims = {f.shape[1] for f in items}
        if len(dims) > 1:
            raise ValueError(f"{what}: feature sizes differ across videos: {sorted(dims)}")
        t_max = max(f.shape[0] for f in items)
        out = items[0].new_zeros(len(items), t_max, items[0].shape[1])  # (N, T, D)
        out_mask = torch.zeros(len(items), t_max, dtype=torch.bool)
        for i, f in enumerate(items):
            out[i, : len(f)], out_mask[i, : len(f)] = f, True
        return out, out_mask
    out = torch.as_tensor(frames)
    if out.ndim != 3:
        raise ValueError(
            f"{what}: expected (N, T, D) or a list of (T_i, D), got shape {tuple(out.shape)}"
        )
    if mask is None:
        return out, torch.ones(out.shape[:2], dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"{what}: mask shape {tuple(mask.shape)} != (N, T) {tuple(out.shape[:2])}")
    return out, mask


class CachedPairs(Dataset):
    """(caption, video) training pairs over cached features; one item = one caption + its video.

    Args:
        frames: per-video frame features, a list of (T_i, D) or a padded (N, T, D) with ``mask``.
        text: (C, D) caption features.
        caption_to_video: (C,) index of each caption's video.
        mask: (N, T) bool validity of padded ``frames``.
        tokens, token_mask: (C, L, D) per-token caption features and (C, L) bool, for heads with
            ``needs_tokens``.
        frames_2x, mask_2x: double-rate frames (list or padded (N, 2T, D) + mask) for heads with
            ``needs_double_rate``.
        text_inputs: per-caption tensors (C, ...) in caption order for a trained text side
            (``vrlib.encoders.tower_inputs.text_inputs`` / ``vrlib.features.extract_text_inputs``); a batch
            carries ``batch["text_inputs"] = {k: v[caps]}``.
        twin_of: (N,) video index of each video's reversed twin, -1 if none (symmetric), for
            ``TrainConfig.twin_batches``.

    Items are dicts; ``__getitems__`` returns a whole batch at once (one gather per tensor
    instead of per-item collation), which the DataLoader uses automatically.
    """

    def __init__(
        self,
        frames: Sequence[Tensor] | Tensor,
        text: Tensor,
        caption_to_video: Any,
        *,
        mask: Tensor | None = None,
        tokens: Tensor | None = None,
        token_mask: Tensor | None = None,
        frames_2x: Sequence[Tensor] | Tensor | None = None,
        mask_2x: Tensor | None = None,
        text_inputs: dict[str, Tensor] | None = None,
        twin_of: Any = None,
    ) -> None:
        self.frames, self.mask = _pad_frames(frames, mask, "CachedPairs.frames")
        self.text = torch.as_tensor(text)
        if self.text.ndim != 2 or self.text.shape[1] != self.frames.shape[2]:
            raise ValueError(
                f"CachedPairs.text: expected (C, {self.frames.shape[2]}), got {tuple(self.text.shape)}"
            )
        n_videos, n_captions = self.frames.shape[0], self.text.shape[0]
        self.caption_to_video = _as_index(caption_to_video, n_videos, n_captions, "CachedPairs")
        self.tokens = self.token_mask = None
        if tokens is not None:
            self.tokens = torch.as_tensor(tokens)
            self.token_mask = (
                torch.ones(self.tokens.shape[:2], dtype=torch.bool)
                if token_mask is None
                else torch.as_tensor(token_mask, dtype=torch.bool)
            )
            if self.tokens.ndim != 3 or self.tokens.shape[0] != n_captions:
                raise ValueError(
                    f"CachedPairs.tokens: expected (C={n_captions}, L, D), got {tuple(self.tokens.shape)}"
                )
            if self.token_mask.shape != self.tokens.shape[:2]:
                raise ValueError(
                    f"CachedPairs.token_mask: shape {tuple(self.token_mask.shape)} != (C, L)"
                )
        self.frames_2x = self.mask_2x = None
        if frames_2x is not None:
            self.frames_2x, self.mask_2x = _pad_frames(frames_2x, mask_2x, "CachedPairs.frames_2x")
            if self.frames_2x.shape[0] != n_videos:
                raise ValueError(
                    f"CachedPairs.frames_2x: {self.frames_2x.shape[0]} videos, frames has {n_videos}"
                )
        self.text_inputs = _check_text_inputs(text_inputs, n_captions)
        self.twin_of = None if twin_of is None else _check_twins(twin_of, n_videos)

    @property
    def num_videos(self) -> int:
        return self.frames.shape[0]

    def __len__(self) -> int:
        return self.text.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] if isinstance(v, Tensor) else v for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        cap = torch.as_tensor(list(indices), dtype=torch.long)
        vid = self.caption_to_video[cap]
        batch = {"caption_index": cap, "video_index": vid, "text": self.text[cap]}
        batch.update(self.video_batch(vid))
        batch.update(self.text_batch(cap))
        return batch

    def video_batch(self, vid: Tensor) -> dict[str, Tensor]:
        """Frames of videos ``vid`` (B,): frames (B, T, D), mask (B, T), and the 2x versions."""
        out = {"frames": self.frames[vid], "mask": self.mask[vid]}
        if self.frames_2x is not None:
            out["frames_2x"], out["mask_2x"] = self.frames_2x[vid], self.mask_2x[vid]
        return out

    def text_batch(self, cap: Tensor) -> dict[str, Tensor]:
        """Caption features of captions ``cap`` (B,): text, and tokens/token_mask when cached."""
        out: dict[str, Any] = {"text": self.text[cap]}
        if self.tokens is not None:
            out["tokens"], out["token_mask"] = self.tokens[cap], self.token_mask[cap]
        if self.text_inputs is not None:
            out["text_inputs"] = {k: v[cap] for k, v in self.text_inputs.items()}
        return out


def _check_text_inputs(text_inputs: Any, n_captions: int) -> dict[str, Tensor] | None:
    """Per-caption tensors, each with C rows, as a dict of tensors (or None)."""
    if text_inputs is None:
        return None
    if not isinstance(text_inputs, dict) or not text_inputs:
        raise TypeError("CachedPairs.text_inputs must be a non-empty dict of (C, ...) tensors")
    out = {k: torch.as_tensor(v) for k, v in text_inputs.items()}
    bad = {k: tuple(v.shape) for k, v in out.items() if v.ndim == 0 or v.shape[0] != n_captions}
    if bad:
        raise ValueError(f"CachedPairs.text_inputs: expected {n_captions} rows (C), got {bad}")
    return out


def _check_twins(twin_of: Any, n_videos: int) -> np.ndarray:
    """(N,) int twin index per video, -1 for none; in range, never itself, symmetric."""
    twins = np.asarray(twin_of)
    if twins.shape != (n_videos,) or not np.issubdtype(twins.dtype, np.integer):
        raise ValueError(
            f"CachedPairs.twin_of: expected ({n_videos},) ints, got {twins.dtype} {twins.shape}"
        )
    twins = twins.astype(np.int64)
    has = np.flatnonzero(twins >= 0)
    if (twins < -1).any() or (twins >= n_videos).any():
        raise ValueError(f"CachedPairs.twin_of: indices outside [-1, {n_videos})")
    bad = has[(twins[has] == has) | (twins[twins[has]] != has)]
    if len(bad):
        raise ValueError(
            f"CachedPairs.twin_of: videos {bad[:5].tolist()} are their own twin or not their "
            "twin's twin (twin_of must be symmetric)"
        )
    return twins


class EndToEndPairs(Dataset):
    """(caption, video) pairs as raw pixels and strings, for ``mode="end_to_end"``.

    Args:
        videos: a sequence whose item ``i`` is video ``i``'s sampled frames, uint8 (T_i, H, W, 3)
            numpy or torch, all with the same H, W. It may be lazy (decode in ``__getitem__``;
            DataLoader workers then decode in parallel).
        captions: the C caption strings.
        caption_to_video: (C,) index of each caption's video.
        num_frames: frames per video after padding (default: the longest video, which needs a
            pass over ``videos``; give it for lazy sequences). Equal T on every rank keeps the
            all-gather shapes equal.
        videos_2x: same as ``videos`` at double frame rate, for heads with ``needs_double_rate``.
    """

    def __init__(
        self,
        videos: Sequence[Any],
        captions: Sequence[str],
        caption_to_video: Any,
        *,
        num_frames: int | None = None,
        videos_2x: Sequence[Any] | None = None,
        num_frames_2x: int | None = None,
    ) -> None:
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("EndToEndPairs.captions must be a list of strings")
        self.videos, self.captions = videos, list(captions)
        self.caption_to_video = _as_index(
            caption_to_video, len(videos), len(captions), "EndToEndPairs"
        )
        self.num_frames = num_frames or max(len(v) for v in videos)
        self.videos_2x = videos_2x
        if videos_2x is not None:
            if len(videos_2x) != len(videos):
                raise ValueError(
                    f"EndToEndPairs.videos_2x: {len(videos_2x)} videos, videos has {len(videos)}"
                )
            self.num_frames_2x = num_frames_2x or max(len(v) for v in videos_2x)

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        cap = torch.as_tensor(list(indices), dtype=torch.long)
        vid = self.caption_to_video[cap]
        batch = {
            "caption_index": cap,
            "video_index": vid,
            "captions": [self.captions[i] for i in cap],
        }
        batch.update(self.video_batch(vid))
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])

    def video_batch(self, vid: Tensor) -> dict[str, Tensor]:
        """pixels uint8 (B, T, H, W, 3), mask (B, T) (and pixels_2x, mask_2x when present)."""
        out = dict(
            zip(("pixels", "mask"), self._stack(self.videos, vid, self.num_frames), strict=True)
        )
        if self.videos_2x is not None:
            out["pixels_2x"], out["mask_2x"] = self._stack(self.videos_2x, vid, self.num_frames_2x)
        return out

    def text_batch(self, cap: Tensor) -> dict[str, Any]:
        return {"captions": [self.captions[i] for i in cap]}

    @staticmethod
    def _stack(videos: Sequence[Any], vid: Tensor, t_max: int) -> tuple[Tensor, Tensor]:
        clips = [torch.as_tensor(np.asarray(videos[int(i)])) for i in vid]
        for i, c in zip(vid.tolist(), clips, strict=True):
            if c.dtype != torch.uint8 or c.ndim != 4 or c.shape[-1] != 3 or not 0 < len(c) <= t_max:
                raise ValueError(
                    f"EndToEndPairs video {i}: expected uint8 (T<= {t_max}, H, W, 3), "
                    f"got {c.dtype} {tuple(c.shape)}"
                )
        sizes = {tuple(c.shape[1:3]) for c in clips}
        if len(sizes) > 1:
            raise ValueError(f"EndToEndPairs: frame sizes differ within a batch: {sorted(sizes)}")
        h, w = sizes.pop()
        pixels = torch.zeros(len(clips), t_max, h, w, 3, dtype=torch.uint8)  # (B, T, H, W, 3)
        mask = torch.zeros(len(clips), t_max, dtype=torch.bool)
        for b, c in enumerate(clips):
            pixels[b, : len(c)], mask[b, : len(c)] = c, True
        return pixels, mask


def _check_mode(
    cfg: TrainConfig, data: Any, encoder: Any, what: str, text_side: Any = None
) -> None:
    if text_side is not None and cfg.mode == "end_to_end":
        raise ValueError(
            "a text_side trains on cached text inputs (mode='cached'); in mode='end_to_end' the "
            "encoder's own text tower trains: drop text_side"
        )
    want = EndToEndPairs if cfg.mode == "end_to_end" else CachedPairs
    if not isinstance(data, want):
        raise TypeError(
            f"{what}: mode={cfg.mode!r} needs a {want.__name__}, got {type(data).__name__}"
        )
    if cfg.mode == "end_to_end" and encoder is None:
        raise ValueError("mode='end_to_end' needs fit(..., encoder=ClipEncoder)")
    if cfg.mode == "cached" and encoder is not None:
        raise ValueError(
            "an encoder was given but mode='cached' (features are precomputed); use mode='end_to_end'"
        )
    if text_side is None:
        return
    inputs = getattr(data, "text_inputs", None)
    needed = list(getattr(text_side, "input_keys", ()))
    missing = [k for k in needed if inputs is None or k not in inputs]
    if missing:
        raise ValueError(
            f"{what}: the text side needs cached text_inputs {needed}, missing {missing}; build "
            "CachedPairs(..., text_inputs=extract_text_inputs(captions, encoder, "
            "hidden_block=side.hidden_block, ...))"
        )


def _check_twin_batches(cfg: TrainConfig, data: Any) -> None:
    if cfg.twin_batches and getattr(data, "twin_of", None) is None:
        raise ValueError(
            "twin_batches=True packs each video with its reversed twin, but train_data has no "
            "twin_of: build CachedPairs(..., twin_of=...) or set twin_batches=False"
        )
