"""Video Retrieval Workbench: text-to-video retrieval studies with image-text models."""

__version__ = "0.1.0"
