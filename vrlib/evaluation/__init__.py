"""``vrlib eval``: score any video-text model on a retrieval benchmark under a named protocol.

Why: no harness standardises video-text retrieval (split, captions per video, V2T rule, median,
ties, frames); the workbench already has the readers, the metrics equal to each paper's released
code, the feature cache and the encoders. This package joins them and writes a result card that
people can compare.

Place in the data flow: above ``data``, ``encoders``, ``features``, ``aggregate`` and ``metrics``
(it uses them all), beside ``index``; only ``cli`` uses it. It never imports a study.

Modules: ``benchmarks`` (each protocol's split, once, with its counts; the dataset fingerprint)
-> ``models`` (open_clip, transformers, or any ``VideoTextModel``; embedding a dataset) ->
``card`` (``ResultCard``, ``compare_cards``) -> ``run`` (``evaluate_model``,
``evaluate_embeddings``, ``evaluate_similarity``) -> ``leaderboard`` (a table from a folder of
cards, published numbers beside) -> ``commands`` (what ``python -m vrlib eval`` does).
"""

from vrlib.evaluation.benchmarks import BENCHMARKS, BenchmarkSplit, benchmark_split
from vrlib.evaluation.card import ProtocolMismatchError, ResultCard, compare_cards
from vrlib.evaluation.models import VideoTextModel, load_model
from vrlib.evaluation.run import evaluate_embeddings, evaluate_model, evaluate_similarity

__all__ = [
    "BENCHMARKS",
    "BenchmarkSplit",
    "ProtocolMismatchError",
    "ResultCard",
    "VideoTextModel",
    "benchmark_split",
    "compare_cards",
    "evaluate_embeddings",
    "evaluate_model",
    "evaluate_similarity",
    "load_model",
]
