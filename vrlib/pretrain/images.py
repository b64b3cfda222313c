"""The world's still images as one preprocessed tensor, the shift augmentation, and image-text R@K.

Why apart from the loop: captioners (vrlib.captions) and the ceiling (vrlib.data.caption_ceiling)
read the same image sets and score with the same held-out protocol as the expert.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vrlib.encoders import ClipEncoder


def load_image_set(
    world_dir: str | os.PathLike,
    split: str,
    encoder: ClipEncoder,
    chunk: int = 512,
    without_words: tuple[str, ...] = (),
) -> tuple[torch.Tensor, list[str]]:
    """Decode and preprocess every image of one split once (those showing none of
    ``without_words``, when given: :func:`kept_images`).

    Returns:
        pixels: float16 (N, 3, S, S), normalised like the model's own transform (float16 halves
            the memory; its rounding is far below one intensity level).
        captions: N strings.
    """
    from vrlib.data.datasets import load_image_captions

    pairs = load_image_captions(world_dir, split)
    if without_words:
        keep = kept_images(world_dir, split, without_words)  # the same rows, in the same order
        pairs = [pair for pair, k in zip(pairs, keep, strict=True) if k]
    if not pairs:
        raise ValueError(f"{world_dir}: no images in split {split!r} of annotations/images.jsonl")
    pixels = []
    for start in range(0, len(pairs), chunk):
        frames = np.stack(
            [read_rgb(path) for path, _ in pairs[start : start + chunk]]
        )  # (B, H, W, 3)
        pixels.append(encoder.preprocess_frames(frames).to("cpu", torch.float16))
    return torch.cat(pixels), [caption for _, caption in pairs]


def kept_images(
    world_dir: str | os.PathLike, split: str, without_words: tuple[str, ...]
) -> list[bool]:
    """Per image of ``split`` (file order), whether it shows none of ``without_words`` (shapes or
    colours): no object of its scene and, for a still of motion, no object of any of its events at
    any time, is of that shape or colour.

    Why: an expert that has never seen a shape or a colour (study 04's Table 2) is one whose
    stills leave out every picture of it, not only those whose caption names it.

    Raises:
        ValueError: an image record has no ``attributes`` (a world made elsewhere), so what it
            shows is unknown.
    """
    from vrlib.data.minimal_pairs import image_records
    from vrlib.data.synthetic import concepts

    keep = []
    for record in image_records(world_dir, split):
        attributes = record.get("attributes")
        if attributes is None:
            raise ValueError(
                f"{Path(world_dir) / 'annotations' / 'images.jsonl'}: image "
                f"{record.get('image_id')!r} has no attributes, so the images showing "
                f"{list(without_words)} cannot be left out"
            )
        pairs = {(obj["shape"], obj["colour"]) for obj in attributes.get("objects", [])}
        pairs |= set(concepts(attributes.get("motion", {}).get("events", [])))
        keep.append(not {word for pair in pairs for word in pair} & set(without_words))
    return keep


def known_words(words: list[str]) -> list[str]:
    """``words`` sorted, if each is a shape (``SHAPES``) or an object colour (``COLOURS``) of the
    embedded world and none repeats (what ``without_words`` may name: studies' parameters and
    ``vrlib pretrain``)."""
    from vrlib.data.synthetic import COLOURS, SHAPES

    unknown = [w for w in words if w not in SHAPES and w not in COLOURS]
    if unknown or len(set(words)) != len(words):
        what = f"unknown word(s) {unknown}" if unknown else f"a word listed twice in {words}"
        raise ValueError(
            f"{what}; valid: the shapes {', '.join(SHAPES)} and the colours {', '.join(COLOURS)}"
        )
    return sorted(words)


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read image ({e})") from e


def _shift(pixels: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (edge-padded); never a flip."""
    if max_shift == 0:
        return pixels
    n, _, s, _ = pixels.shape
    padded = F.pad(pixels, (max_shift,) * 4, mode="replicate")  # (N, 3, S + 2m, S + 2m)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(s)[None, :])[:, None, :, None]  # (N, 1, S, 1)
    cols = (dx[:, None] + torch.arange(s)[None, :])[:, None, None, :]  # (N, 1, 1, S)
    return padded[
        torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols
    ]  # (N, 3, S, S)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_image_text(
    encoder: ClipEncoder, pixels: torch.Tensor, captions: list[str]
) -> dict[str, float]:
    """Held-out image->text and text->image retrieval.

    Queries are the distinct caption texts; an image and a text match when the image's caption is
    that text (identical captions of different images are all correct answers, not distractors).
    Ranks and ties follow ``vrlib.metrics`` (optimistic ties).
    """
    from vrlib.metrics import evaluate

    was_training = encoder.model.training
    encoder.model.eval()
    texts = sorted(set(captions))
    index = {t: i for i, t in enumerate(texts)}
    image_emb = encoder.encode_preprocessed(pixels.float())  # (V, d)
    text_emb = encoder.encode_text(texts)  # (C, d)
    positives = torch.zeros(len(texts), len(captions), dtype=torch.bool)  # (C, V)
    positives[[index[c] for c in captions], torch.arange(len(captions))] = True
    result = evaluate(text_emb @ image_emb.T, positives)
    encoder.model.train(was_training)
    out = {f"t2i_{k}": result["t2v"][k] for k in ("R@1", "R@5", "R@10", "MdR")}
    out.update({f"i2t_{k}": result["v2t"][k] for k in ("R@1", "R@5", "R@10", "MdR")})
    out.update(num_images=len(captions), num_texts=len(texts))
    return out


# ----------------------------------------------------------------------------- training


def image_set_sha(world_dir: str | os.PathLike) -> str:
    """SHA-256 of a world's image annotations and every image file they name.

    Why: the expert must be retrained when the images or captions it learned from change (a
    regenerated world), and only then; hashing ~6,000 small PNGs takes well under a second.
    """
    world_dir = Path(world_dir)
    ann = world_dir / "annotations" / "images.jsonl"
    h = hashlib.sha256(ann.read_bytes())
    for line in ann.read_text().splitlines():
        if line.strip():
            h.update((world_dir / json.loads(line)["path"]).read_bytes())
    return h.hexdigest()
