"""Rendering: scenes to RGB pixels, and frames to pinned, byte-reproducible H.264.

Why: images and video frames are drawn by the same :func:`render`, so a frame and a still image
with the same attributes look alike to the image-text expert; the x264 options are pinned so
the same frames always give the same mp4 bytes (see the package docstring).
"""

from __future__ import annotations

import io
from fractions import Fraction
from functools import lru_cache

import numpy as np

from vrlib.data.synthetic.config import BACKGROUNDS, COLOURS, PLAIN_BACKGROUNDS, TEXTURE_GREYS
from vrlib.data.synthetic.scenes import scene_at

# Pinned H.264 settings (see the package docstring for why mbtree and weightp are off).
X264_OPTIONS = {
    "crf": "20",
    "preset": "medium",
    "g": "20",
    "threads": "1",
    "x264-params": "mbtree=0:weightp=0",
}


# ----------------------------------------------------------------------------- rendering


@lru_cache(maxsize=16)
def _background(name: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8 background; read-only, copy before drawing."""
    if name in PLAIN_BACKGROUNDS:
        img = np.empty((size, size, 3), np.uint8)
        img[:] = PLAIN_BACKGROUNDS[name]
    else:
        idx = np.arange(size)
        if name == "stripes":  # vertical bands, period size/7 (16 px at 112)
            band = (idx * 7 // size) % 2
            choice = np.broadcast_to(band[None, :], (size, size))
        elif name == "checkerboard":  # 8 x 8 cells
            cell = idx * 8 // size
            choice = (cell[:, None] + cell[None, :]) % 2
        else:
            raise ValueError(f"unknown background {name!r}; valid: {', '.join(BACKGROUNDS)}")
        img = np.asarray(TEXTURE_GREYS, np.uint8)[choice]
    img.flags.writeable = False
    return img


def _convex(u: np.ndarray, v: np.ndarray, corners: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Points (u, v) inside a convex polygon whose corners run clockwise on screen."""
    inside = np.ones(u.shape, bool)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        inside &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0
    return inside


def _star(u: np.ndarray, v: np.ndarray, inner: float = 0.5) -> np.ndarray:
    """Five-pointed star, one tip up: fold the angle into one half-spike, test one edge."""
    rho = np.hypot(u, v)
    spike = 2 * np.pi / 5
    a = np.mod(np.arctan2(v, u) + np.pi / 2, spike)  # 0 at a tip
    a = np.minimum(a, spike - a)  # in [0, spike/2]
    px, py = rho * np.cos(a), rho * np.sin(a)
    ix, iy = inner * np.cos(spike / 2), inner * np.sin(spike / 2)  # inner corner; the tip is (1, 0)
    return (ix - 1) * py - iy * (px - 1) >= 0


# Each mask takes coordinates in units of the object's radius, centred on the object.
SHAPE_MASKS = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85),
    "triangle": lambda u, v: _convex(u, v, ((0.0, -1.0), (0.95, 0.75), (-0.95, 0.75))),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "star": _star,
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0))
    ),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
}


def draw(img: np.ndarray, obj: dict, alpha: float = 1.0) -> np.ndarray:
    """Draw one object (shape, colour, x, y, radius as frame fractions) onto ``img`` in place.

    ``alpha`` < 1 blends it with what is below: the ghosts of a motion trail
    (``vrlib.data.synthetic.motion``).
    """
    size = img.shape[0]
    cx, cy, r = obj["x"] * size, obj["y"] * size, obj["radius"] * size
    x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)
    y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)
    u = (np.arange(x0, x1) + 0.5 - cx)[None, :] / r  # (1, w)
    v = (np.arange(y0, y1) + 0.5 - cy)[:, None] / r  # (h, 1)
    u, v = np.broadcast_arrays(u, v)  # (h, w)
    mask = SHAPE_MASKS[obj["shape"]](u, v)
    patch = img[y0:y1, x0:x1]
    if alpha >= 1.0:
        patch[mask] = COLOURS[obj["colour"]]
    else:
        colour = np.asarray(COLOURS[obj["colour"]], np.float64)
        patch[mask] = np.round((1 - alpha) * patch[mask] + alpha * colour).astype(np.uint8)
    return img


def render(background: str, objects: list[dict], size: int, style: str = "still") -> np.ndarray:
    """Draw ``objects`` (dicts with shape, colour, x, y, radius as frame fractions) in order.

    Args:
        style: ``"still"``, or ``"video"`` for the renditions of the background that only videos
            show (``vrlib.data.synthetic.nuisance``; the background keeps its name and caption).

    Returns:
        uint8 (size, size, 3) RGB.
    """
    if style == "video":
        from vrlib.data.synthetic.nuisance import video_background

        img = video_background(background, size).copy()
    else:
        img = _background(background, size).copy()
    for obj in objects:
        draw(img, obj)
    return img


def render_video(num_frames: int, events: list[dict], size: int) -> list[np.ndarray]:
    """All frames, uint8 (size, size, 3) RGB each, drawn from :func:`scene_at` (without the
    video's nuisances and bad frames, which ``nuisance.degrade_video`` adds)."""
    frames = []
    for i in range(num_frames):
        scene = scene_at(events, i)
        style = events[scene["shot"]].get("background_style", "still")
        frames.append(render(scene["background"], scene["objects"], size, style))
    return frames


def x264_options(crf: int = 20) -> dict[str, str]:
    """The pinned options with this constant rate factor (higher: heavier compression)."""
    return {**X264_OPTIONS, "crf": str(crf)}


def encode_mp4(frames: list[np.ndarray], fps: int, crf: int = 20) -> bytes:
    """H.264 (libx264, yuv420p, pinned options, ``crf``) in an mp4 container, as bytes."""
    import av

    height, width = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=x264_options(crf))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return buf.getvalue()
