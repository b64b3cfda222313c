"""Image-text encoders: an open_clip model behind one small interface.

Why a wrapper: every study turns frames and captions into L2-normalised embeddings, keys a
feature cache on the exact weights, and must run the same on a laptop CPU and on a GPU. open_clip
already builds the models; this package adds what the studies need on top of it.

Place in the data flow: decoded frames and captions (``vrlib.data``) -> embeddings, used by
feature extraction (``vrlib.features``), the expert's pretraining (``vrlib.pretrain``) and
end-to-end training (``vrlib.train``).

Modules: ``names`` (model names and the spelling of ``pretrained``, checked without open_clip),
``weights`` (tags resolved in the local caches or downloaded, local checkpoint files,
the model configs registered with open_clip) -> ``clip`` (``ClipEncoder`` and ``load_clip``) -> ``tower_inputs`` (cached text-tower inputs
for text sides trained on cached captions; not named ``text_inputs``, the function it exports,
because an imported submodule would shadow that name on the package).

Exports: ``ClipEncoder``, ``load_clip``, ``check_model_name``, ``check_pretrained``, ``PRECISIONS``,
``WeightsUnavailableError``, ``CheckpointMismatchError``, ``CHECKPOINT_SUFFIXES``, ``MODEL_CONFIG_DIR``,
``text_inputs``, ``eot_index``, ``text_tower``.
"""

import importlib
from typing import Any

# Exports, by the module that defines them. Imported on first use (PEP 562), so that
# ``vrlib.encoders.names`` (model names checked from their JSON configs) and parameter validation
# do not pay for importing open_clip.
_WHERE = {
    "PRECISIONS": "clip",
    "ClipEncoder": "clip",
    "load_clip": "clip",
    "eot_index": "tower_inputs",
    "text_inputs": "tower_inputs",
    "text_tower": "tower_inputs",
    "CHECKPOINT_SUFFIXES": "names",
    "MODEL_CONFIG_DIR": "names",
    "check_model_name": "names",
    "check_pretrained": "names",
    "CheckpointMismatchError": "weights",
    "WeightsUnavailableError": "weights",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vrlib.encoders.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
