"""Search your own videos: a folder of videos becomes an index of video embeddings, queried by text or video.

Place in the data flow: beside the studies. It reads a folder (``vrlib.data``), extracts frame
features through the resumable feature cache (``vrlib.features``), aggregates them
(``vrlib.aggregate``) and answers queries with the same encoder (``vrlib.encoders``); the query
browser (``vrlib.browse``) and the ``index`` / ``search`` commands use the same object.

Modules: ``video_index`` (``VideoIndex``: build / update / search / save / load) -> ``search``
(exact one-pass top-k, the faiss IVF-Flat / IVF-PQ index, ``nprobe`` tuned for a target recall) ·
``store`` (folder listing, manifest, files, all-or-nothing saves) · ``integrity`` (checksums, damaged
files named) · ``queries`` (query embeddings, the encoder an index names) -> ``shards`` (encoding
shared by torchrun / Slurm ranks) -> ``commands`` (what
``python -m vrlib index`` and ``search`` do).

Exports: ``VideoIndex``, ``SearchHit``, ``IndexMismatchError``, ``open_encoder``, ``default_sampling``.
"""

from vrlib.index.queries import open_encoder
from vrlib.index.video_index import IndexMismatchError, SearchHit, VideoIndex, default_sampling

__all__ = ["VideoIndex", "SearchHit", "IndexMismatchError", "open_encoder", "default_sampling"]
