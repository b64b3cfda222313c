"""What videos show and stills never do: the image->video gap, and frames that show nothing.

Why: a CLIP trained on photos meets, in videos, heavier compression, motion blur, colour casts,
lighting that drifts, a shaking camera, and settings its photos rarely had; and a video has
fades, blank frames between shots and things passing in front of the camera. Those are what
Ventura's pseudo-captions and Frozen's video training adapt to, and what frame selection by
CLIPScore avoids. Two knobs of :class:`~vrlib.data.synthetic.config.WorldConfig` plant them:

- ``video_shift`` (0..1): the strength of every video-only nuisance at once (:func:`sample_shift`
  draws one video's, :func:`apply_shift` applies it; the x264 rate factor grows with it);
- ``bad_frame_share`` (0..0.5): about that share of each video's frames is a fade, a blank frame
  at a cut or at the ends, or covered by a passing occluder (:func:`plan_bad_frames`,
  :func:`apply_bad_frames`). Half the occluders pass at the middle of the video, so "the middle
  frame" is often a bad pick, while most frames stay good.

Everything is drawn from the video's own random stream and recorded in its annotation
(``meta["shift"]``, ``meta["bad_frames"]``), so the degradation is reproducible and a study can
tell good frames from bad ones. The scene under it is still :func:`~.scenes.scene_at`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vrlib.data.synthetic.config import BACKGROUNDS, PLAIN_BACKGROUNDS, TEXTURE_GREYS

_OCCLUDER = (96, 84, 72)  # a dull brown slab: no object colour, no background colour


@lru_cache(maxsize=16)
def video_background(name: str, size: int) -> np.ndarray:
    """A rendition of ``name`` that no still image shows (read-only): plain colours as a vertical
    gradient, stripes horizontal and wider, a coarser checkerboard. It keeps its name, so captions
    still say "on a white background"."""
    idx = np.arange(size)
    if name in PLAIN_BACKGROUNDS:
        base = np.asarray(PLAIN_BACKGROUNDS[name], np.float64)
        ramp = np.linspace(-40.0, 40.0, size)[:, None, None]  # (size, 1, 1) darker at the top
        img = np.broadcast_to(np.clip(base + ramp, 0, 255), (size, size, 3))
    elif name == "stripes":
        band = (idx * 5 // size) % 2
        img = np.asarray(TEXTURE_GREYS, np.uint8)[np.broadcast_to(band[:, None], (size, size))]
    elif name == "checkerboard":
        cell = idx * 5 // size
        img = np.asarray(TEXTURE_GREYS, np.uint8)[(cell[:, None] + cell[None, :]) % 2]
    else:
        raise ValueError(f"unknown background {name!r}; valid: {', '.join(BACKGROUNDS)}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.flags.writeable = False
    return img


# ----------------------------------------------------------------------------- the video shift


def crf_for(shift: float) -> int:
    """x264 constant rate factor: 20 (the stills' quality) at shift 0, 36 at shift 1."""
    return 20 + round(16 * shift)


def sample_shift(rng: np.random.Generator, shift: float, num_shots: int) -> dict:
    """One video's nuisances at strength ``shift``: a colour cast, a lighting drift, blur, camera
    jitter, and for each shot whether its background is a video-only rendition."""
    return {
        "cast": [round(float(g), 4) for g in 1.0 + 0.3 * shift * rng.uniform(-1, 1, 3)],
        "light": [round(float(g), 4) for g in 1.0 + 0.45 * shift * rng.uniform(-1, 1, 2)],
        "blur": int(round(2 * shift * rng.uniform(0.5, 1.0))),
        "jitter": int(round(6 * shift)),
        "video_backgrounds": [bool(rng.random() < shift) for _ in range(num_shots)],
        "crf": crf_for(shift),
    }


def _box_blur(frames: np.ndarray, radius: int) -> np.ndarray:
    """Separable box blur of side 2 * radius + 1 over (T, H, W, 3), edges replicated; float32."""
    k = 2 * radius + 1
    out = frames.astype(np.float32)
    for axis in (1, 2):
        pad = [(radius, radius) if a == axis else (0, 0) for a in range(4)]
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        total = np.zeros_like(out)
        for shift in range(k):  # k shifted views: cheaper than a cumulative sum at k <= 5
            total += padded[(slice(None),) * axis + (slice(shift, shift + n),)]
        out = total / k
    return out


def apply_shift(
    frames: list[np.ndarray], params: dict, rng: np.random.Generator
) -> list[np.ndarray]:
    """The nuisances of ``params`` (:func:`sample_shift`) on every frame; ``rng`` draws the jitter."""
    x = np.stack(frames)  # (T, H, W, 3)
    n, size = len(frames), x.shape[1]
    if params["blur"]:
        x = _box_blur(x, params["blur"])
    a, b = params["light"]
    light = (a + (b - a) * np.arange(n) / max(1, n - 1)).astype(np.float32)  # (T,)
    gain = light[:, None, None, None] * np.asarray(params["cast"], np.float32)  # (T, 1, 1, 3)
    x = np.clip(x * gain, 0, 255).astype(np.uint8)
    j = params["jitter"]
    if not j:
        return list(x)
    offsets = rng.integers(-j, j + 1, (n, 2))
    padded = np.pad(x, ((0, 0), (j, j), (j, j), (0, 0)), mode="edge")
    return [
        np.ascontiguousarray(padded[i, j + dy : j + dy + size, j + dx : j + dx + size])
        for i, (dy, dx) in enumerate(offsets)
    ]


# ----------------------------------------------------------------------------- bad frames


def plan_bad_frames(
    rng: np.random.Generator, events: list[dict], num_frames: int, share: float
) -> dict[int, str]:
    """Which frames are bad and how: ``{frame: "blank" | "fade" | "occluder"}``, about
    ``share * num_frames`` of them.

    Half the budget goes to transitions (a fade to a blank frame at every cut, or a fade in from
    black at the start of a one-shot video), the rest to one occluder passing in front of the
    camera, centred on the middle frame in half of the videos.
    """
    budget = int(round(share * num_frames))
    bad: dict[int, str] = {}
    if budget == 0:
        return bad
    cuts = [ev["frames"][0] for ev in events[1:]] or [0]
    side = max(1, budget // (2 * (2 * len(cuts))))  # frames faded on each side of a cut
    for cut in cuts:
        for d in range(-side, side + 1):
            i = cut + d
            if 0 <= i < num_frames:
                bad[i] = "blank" if d == 0 or (cut == 0 and d < 0) else "fade"
    width = max(1, budget - len(bad))
    middle = num_frames // 2 if rng.random() < 0.5 else int(rng.integers(num_frames))
    for i in range(middle - width // 2, middle - width // 2 + width):
        if 0 <= i < num_frames:
            bad.setdefault(i, "occluder")
    return dict(sorted(bad.items()))


def apply_bad_frames(frames: list[np.ndarray], bad: dict[int, str]) -> list[np.ndarray]:
    """Blank frames are black; a fade darkens toward the nearest blank; the occluder is a slab
    covering ~70% of the frame that slides from left to right over its frames."""
    out = [f.copy() for f in frames]
    blanks = [i for i, kind in bad.items() if kind == "blank"]
    occluded = [i for i, kind in bad.items() if kind == "occluder"]
    for i, kind in bad.items():
        size = out[i].shape[0]
        if kind == "blank":
            out[i][:] = 0
        elif kind == "fade" and blanks:
            d = min(abs(i - b) for b in blanks)
            keep = d / (d + 1.0)  # 1/2, 2/3, ... of the picture survives
            out[i] = np.round(out[i] * keep).astype(np.uint8)
        elif kind == "occluder":
            k = occluded.index(i)
            width = int(0.7 * size)
            left = int(round(-0.2 * size + (0.5 * size) * k / max(1, len(occluded) - 1)))
            out[i][:, max(0, left) : max(0, left + width)] = _OCCLUDER
    return out
