"""Temporal heads: frame features (B, T, D) -> video embedding, and the video-text similarity.

``build_model(name, dim=512, num_frames=12, **cfg)`` builds any head in ``MODELS``; every head
is a ``TemporalHead`` (contract and training recipe in ``vrlib.models.base``). Importing this
package registers all heads:

- ``meanP``, ``seqTransf`` (CLIP4Clip, ``clip4clip.py``);
- ``tdb-sub``, ``tdb-mlp``, ``tdb``, ``tdb-all``, ``tdb+tab-base``, ``tdb+tab-temporal``,
  ``tdb+tab-transformer``, ``tdb+tab-tdb`` (CLIP2Video Table 1, ``clip2video.py``);
- ``early-late`` (``probes.py``): means of the first and last half, a probe of the order signal.

The caption side trained on cached inputs (``frozen``, ``adapter``, ``last_blocks``) is built by
``build_text_side`` (``text_side.py``); its output is the keyword arguments of every head's
``text_side``.

``order_blind(head)`` (``controls.py``) wraps any head into its order-blind control: the same
parts, frames sorted into a canonical content order, so frame order cannot matter.
"""

from vrlib.encoders.tower_inputs import text_inputs

from . import clip2video, clip4clip, probes  # noqa: F401  (registers the heads)
from .base import TemporalHead
from .controls import CanonicalOrder, order_blind
from .registry import MODELS, build_model
from .text_side import TEXT_SIDES, TextSide, build_text_side


def available_models() -> list[str]:
    """Names accepted by ``build_model``, sorted."""
    return MODELS.names()


__all__ = [
    "CanonicalOrder",
    "MODELS",
    "TEXT_SIDES",
    "TemporalHead",
    "TextSide",
    "available_models",
    "build_model",
    "build_text_side",
    "order_blind",
    "text_inputs",
]
