"""The one resize both backends' frames go through (torch bilinear with antialias).

Why apart: resizing after decoding, in one function, makes frames from either backend
identical at any size; it needs torch, the readers do not.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ("short_side", "square")


def check_resize(size: int | None, resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; valid: {', '.join(RESIZE_MODES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | np.integer)):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    if size is not None and size <= 0:
        raise ValueError(f"size must be a positive int or None, got {size!r}")


def resize_frames(frames: np.ndarray, size: int | None, resize: str = "short_side") -> np.ndarray:
    """Resize uint8 ``(N, H, W, 3)`` frames; the one resize both backends use.

    ``short_side``: the short side becomes ``size``, the long side ``round(long * size / short)``
    (aspect kept, odd sizes allowed). ``square``: the same, then a centre crop to
    ``(size, size)`` (offset ``(extra) // 2``), the "maximal square centre crop" of CLIP-style
    evaluation. Interpolation is torch bilinear with ``antialias=True`` (a proper low-pass when
    shrinking, unlike plain bilinear), computed in float32 and rounded, so it is identical for
    frames from either backend and independent of the decoder's own scaler.
    """
    check_resize(size, resize)
    if size is None:
        return frames
    _, h, w, _ = frames.shape
    scale = size / min(h, w)
    new_h, new_w = (size, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), size)
    if (new_h, new_w) != (h, w) and frames.shape[0] > 0:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N,3,H,W)
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
        frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N,H,W,3)
    elif frames.shape[0] == 0:
        frames = np.zeros((0, new_h, new_w, 3), dtype=np.uint8)
    if resize == "square":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        frames = frames[:, top : top + size, left : left + size]
    return np.ascontiguousarray(frames)
