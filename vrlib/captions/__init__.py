"""Image captioners and labels from frames (study 03, Ventura et al. 2024)."""

from vrlib.captions.base import CAPTIONERS, Captioner, Decoding, WordVocab, load_captioner
from vrlib.captions.train import (
    KINDS,
    captioner_path,
    ensure_captioner,
    load_world_images,
    train_captioner,
)
from vrlib.captions.world import WorldCaptioner, load_world_captioner
from vrlib.captions import hf as _hf  # noqa: F401  registers "blip" and "clipcap" (transformers is imported lazily)

__all__ = [
    "CAPTIONERS",
    "KINDS",
    "Captioner",
    "Decoding",
    "WordVocab",
    "WorldCaptioner",
    "captioner_path",
    "ensure_captioner",
    "load_captioner",
    "load_world_captioner",
    "load_world_images",
    "train_captioner",
]
