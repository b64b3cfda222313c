"""Video Retrieval Workbench: text-to-video retrieval studies with image-text models."""

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"evaluate_model": "vrlib.evaluation", "ResultCard": "vrlib.evaluation"}


def __getattr__(name: str) -> Any:
    """``vrlib.evaluate_model`` and ``vrlib.ResultCard``, imported on first use.

    Why lazy (and by name): ``import vrlib`` stays light, and modules low in the layering that
    read ``vrlib.__version__`` do not depend on the evaluation layer through the root package.
    """
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vrlib' has no attribute {name!r}")
