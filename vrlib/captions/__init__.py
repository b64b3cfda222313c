"""Image captioners and labels from frames (study 03, Ventura et al. 2024).

- ``base``: the :class:`Captioner` interface, the ``CAPTIONERS`` registry, :class:`Decoding`.
- ``train`` / ``world``: ``clipcap-tiny`` and ``blip-tiny``, trained on the world's still images
  and cached in ``$VRLIB_HOME/captioners``.
- ``hf``: real BLIP and ClipCap from local weights (``pip install 'vrlib[captions]'``).
- ``quality``: attribute precision against the world's record, BLEU-4.
- ``labels``: M frames per video x I captioners, CLIPScore, the resumable caption cache, and
  the ground-truth frame describer (an upper bound, never a captioner result).
- ``selection``: the selection rules (Rand(M), Middle 1, Top 1, Rand(Top K), C+B, pooled top K)
  and the per-epoch draw.
"""

from vrlib.captions import hf as _hf  # noqa: F401  registers "blip" and "clipcap" (lazy transformers)
from vrlib.captions.base import CAPTIONERS, Captioner, Decoding, WordVocab, load_captioner
from vrlib.captions.labels import (
    Candidates,
    GroundTruthDescriber,
    VideoCaptions,
    caption_videos,
    clip_score,
    stack,
)
from vrlib.captions.selection import SELECTION_RULES, Selection, draw, select
from vrlib.captions.train import (
    KINDS,
    captioner_path,
    ensure_captioner,
    load_world_images,
    train_captioner,
)
from vrlib.captions.world import WorldCaptioner, load_world_captioner

__all__ = [
    "CAPTIONERS",
    "KINDS",
    "SELECTION_RULES",
    "Candidates",
    "Captioner",
    "Decoding",
    "GroundTruthDescriber",
    "Selection",
    "VideoCaptions",
    "WordVocab",
    "WorldCaptioner",
    "caption_videos",
    "captioner_path",
    "clip_score",
    "draw",
    "ensure_captioner",
    "load_captioner",
    "load_world_captioner",
    "load_world_images",
    "select",
    "stack",
    "train_captioner",
]
