"""Video Retrieval Workbench: text-to-video retrieval studies with image-text models."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``vrlib.evaluate_model`` and ``vrlib.ResultCard``, imported on first use (so that
    ``import vrlib`` stays light)."""
    if name in ("evaluate_model", "ResultCard"):
        import vrlib.evaluation

        return getattr(vrlib.evaluation, name)
    raise AttributeError(f"module 'vrlib' has no attribute {name!r}")
