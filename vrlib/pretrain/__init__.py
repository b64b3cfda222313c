"""Pretrain the image-text expert: ``vrlib-tiny`` trained from scratch on a world's still images.

Why: no pretrained CLIP can be downloaded where the workbench is built and tested, so the studies
need an image-text model made locally. Like CLIP, it sees only still images and their captions:
plain scenes (shape, colour, size, position, background) and, as on the web, stills that show
motion or change (onion-skin trails, before->after strips, ``synthetic.motion``) captioned with the
words of time. It never sees a video: what it knows about videos comes from the studies built on
top of it, exactly as with a real CLIP.

The loop is kept in plain sight (nanoGPT style): images are decoded and preprocessed once into one
in-memory tensor, then AdamW with linear warmup and cosine decay minimises CLIP's symmetric
contrastive loss (``open_clip.loss.ClipLoss``) with the model's own learnable temperature.

Augmentation is a random shift of up to ``shift`` pixels (edge padding, then a crop back to the
model size) and nothing else: captions name positions ("on the left"), so a horizontal flip would
teach the model wrong captions, and a large crop could cut an object out of the picture.

Each finished epoch writes an atomic checkpoint (model, optimizer, scheduler, epoch, RNG state,
history, held-out metrics). Rerunning resumes from it; a finished run returns at once. Shuffling
and augmentation draw from a generator seeded by (seed, epoch), so a resumed run is identical to an
uninterrupted one. The checkpoint loads with ``load_clip("vrlib-tiny", pretrained=PATH)``; a
sidecar ``PATH.json`` holds the summary for people and reports.
"""

from vrlib.pretrain.config import MODEL_NAME, PRESETS, PretrainConfig, config_record
from vrlib.pretrain.expert import ensure_expert, preset_settings, pretrain_from_cli
from vrlib.pretrain.images import (
    evaluate_image_text,
    image_set_sha,
    kept_images,
    known_words,
    load_image_set,
    read_rgb,
)
from vrlib.pretrain.loop import (
    CHECKPOINT_VERSION,
    adamw_optimizer,
    epoch_generator,
    held_out_ceiling,
    pretrain_expert,
    sidecar_path,
    warmup_cosine_schedule,
)

__all__ = [
    "CHECKPOINT_VERSION",
    "MODEL_NAME",
    "PRESETS",
    "PretrainConfig",
    "adamw_optimizer",
    "config_record",
    "epoch_generator",
    "ensure_expert",
    "evaluate_image_text",
    "held_out_ceiling",
    "image_set_sha",
    "kept_images",
    "known_words",
    "load_image_set",
    "preset_settings",
    "pretrain_expert",
    "pretrain_from_cli",
    "read_rgb",
    "sidecar_path",
    "warmup_cosine_schedule",
]
