"""Image-text encoders: an open_clip model behind one small interface.

Why a wrapper: every study turns frames and captions into L2-normalised embeddings, keys a
feature cache on the exact weights, and must run the same on a laptop CPU and on a GPU. open_clip
already builds the models; this package adds what the studies need on top of it.

Place in the data flow: decoded frames and captions (``vrlib.data``) -> embeddings, used by
feature extraction (``vrlib.features``), the expert's pretraining (``vrlib.pretrain``) and
end-to-end training (``vrlib.train``).

Modules: ``weights`` (tags resolved in the local caches or downloaded, local checkpoint files,
the model configs registered with open_clip) -> ``clip`` (``ClipEncoder`` and ``load_clip``) -> ``text_inputs`` (cached text-tower inputs
for text sides trained on cached captions).

Exports: ``ClipEncoder``, ``load_clip``, ``check_model_name``, ``check_pretrained``, ``PRECISIONS``,
``WeightsUnavailableError``, ``CheckpointMismatchError``, ``CHECKPOINT_SUFFIXES``, ``MODEL_CONFIG_DIR``,
``text_inputs``, ``eot_index``, ``text_tower``.
"""

from vrlib.encoders.clip import PRECISIONS, ClipEncoder, load_clip
from vrlib.encoders.text_inputs import eot_index, text_inputs, text_tower
from vrlib.encoders.weights import (
    CHECKPOINT_SUFFIXES,
    MODEL_CONFIG_DIR,
    CheckpointMismatchError,
    WeightsUnavailableError,
    check_model_name,
    check_pretrained,
)

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "MODEL_CONFIG_DIR",
    "PRECISIONS",
    "CheckpointMismatchError",
    "ClipEncoder",
    "WeightsUnavailableError",
    "check_model_name",
    "check_pretrained",
    "eot_index",
    "load_clip",
    "text_inputs",
    "text_tower",
]
