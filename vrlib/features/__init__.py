"""Frame and text feature extraction with decode/encode overlap and a resumable on-disk cache.

Why: every study starts from the same frozen-encoder frame features, and decoding plus encoding
all videos is by far the slowest step. So it is done once, in one place.

Place in the data flow: videos and captions (``vrlib.data``) and a frozen encoder
(``vrlib.encoders``) -> per-frame and per-caption features -> aggregation (``vrlib.aggregate``),
temporal heads (``vrlib.models``) and training (``vrlib.train``).

Modules: ``decode`` (decoding in DataLoader workers, packing frames into full encoder batches)
-> ``cache`` (run keys, content keys, shards and manifests, text feature files) -> ``pipeline``
(the two public calls and their result); ``text_cache`` (``extract_text_inputs``: the cached
inputs of a trained text side).

Exports: ``FrameFeatures``, ``extract_frame_features``, ``extract_text_features``,
``extract_text_inputs``, ``process_rank``, ``share_done`` (sharding over processes),
``CACHE_FORMAT``, ``ON_ERROR``.
"""

from vrlib.features.cache import CACHE_FORMAT
from vrlib.features.pipeline import (
    ON_ERROR,
    FrameFeatures,
    extract_frame_features,
    extract_text_features,
    process_rank,
    share_done,
)
from vrlib.features.text_cache import extract_text_inputs

__all__ = [
    "CACHE_FORMAT",
    "ON_ERROR",
    "FrameFeatures",
    "extract_frame_features",
    "extract_text_features",
    "extract_text_inputs",
    "process_rank",
    "share_done",
]
