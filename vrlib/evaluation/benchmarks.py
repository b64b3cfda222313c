"""Each benchmark's evaluation split, defined once, and the fingerprint of what was found on disk.

Why one table: "which split" is the question users of every reference project ask first
(frozen-in-time #28, InternVideo #153, UMT #9). Each entry names the reader's split, how its
captions become queries, and the counts the published protocol must produce; a card whose data
does not reach those counts says so ("partial"), so a number on 990 videos is never mistaken for
one on the benchmark.

Counts are pinned where the protocol fixes them; ``None`` where distributions differ (DiDeMo's
and YouCook2's downloadable videos, MSVD's and VATEX's caption counts) and only the videos named
by the annotations can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrlib.data.datasets import DATASETS, RetrievalDataset, load_dataset
from vrlib.io import sha256_file

_ANNOTATION_SUFFIXES = (".json", ".jsonl", ".csv", ".txt", ".pkl", ".tsv")
MAX_NAMED = 20  # excluded videos named on a card


@dataclass(frozen=True)
class BenchmarkSplit:
    """One benchmark split as a published protocol evaluates it.

    Attributes:
        reader_split: the split name of the dataset reader.
        queries: how captions become queries (``one per video``, ``all captions``,
            ``paragraph per video``, ``one per clip``).
        videos: the number of test videos the protocol evaluates (None: not pinned).
        captions: the number of queries (None: not pinned).
        reader_options: options for the reader; a list value means the first file that exists.
    """

    reader_split: str
    queries: str
    videos: int | None = None
    captions: int | None = None
    reader_options: dict[str, Any] = field(default_factory=dict)


BENCHMARKS: dict[str, dict[str, BenchmarkSplit]] = {
    "msrvtt": {
        "1k-A": BenchmarkSplit("1k-A", "one per video", 1000, 1000),
        "full": BenchmarkSplit("full", "all captions", 2990, 59800),
    },
    "msvd": {"test": BenchmarkSplit("test", "all captions", 670)},
    "lsmdc": {"test": BenchmarkSplit("test", "one per video", 1000, 1000)},
    "vatex": {
        "test": BenchmarkSplit(
            "val",
            "all captions",
            1500,
            reader_options={"video_list": ["test_list.txt", "hgr_test_list.txt"]},
        )
    },
    "didemo": {"test": BenchmarkSplit("test", "paragraph per video")},
    "activitynet": {"val1": BenchmarkSplit("val1", "paragraph per video", 4917, 4917)},
    "youcook2": {"val": BenchmarkSplit("val", "one per clip")},
}


def benchmark_split(dataset: str, split: str) -> BenchmarkSplit | None:
    """The protocol's split of ``dataset``; None for datasets without one (folder, synthetic).

    Raises:
        ValueError: a benchmark dataset with another split name (the error lists the valid ones).
    """
    DATASETS.get(dataset)  # KeyError listing the registered datasets
    if dataset not in BENCHMARKS:
        return None
    if split not in BENCHMARKS[dataset]:
        raise ValueError(
            f"dataset {dataset!r} is evaluated on split(s) {', '.join(BENCHMARKS[dataset])}, "
            f"not {split!r} (the protocol's split is defined once, in vrlib.evaluation.benchmarks)"
        )
    return BENCHMARKS[dataset][split]


def load_benchmark(
    dataset: str,
    root: str | Path,
    split: str,
    allow_missing: bool = False,
    video_dir: str | None = None,
) -> tuple[RetrievalDataset, BenchmarkSplit | None]:
    """Read the benchmark split; a missing video raises ``MissingVideoError`` naming it, unless
    ``allow_missing`` (then it is dropped and counted in ``dataset.skipped``)."""
    bench = benchmark_split(dataset, split)
    root = Path(root).expanduser()
    options: dict[str, Any] = {} if video_dir is None else {"video_dir": video_dir}
    for key, value in (bench.reader_options if bench else {}).items():
        options[key] = _first_existing(root, value) if isinstance(value, list) else value
    options = {k: v for k, v in options.items() if v is not None}
    reader_split = bench.reader_split if bench else split
    on_error = "skip" if allow_missing else "raise"
    return load_dataset(dataset, root, reader_split, on_error=on_error, **options), bench


def _first_existing(root: Path, names: list[str]) -> str | None:
    return next((n for n in names if (root / n).is_file()), None)


def dataset_record(
    ds: RetrievalDataset, split: str, bench: BenchmarkSplit | None, listed: int
) -> dict[str, Any]:
    """The card's dataset fingerprint: annotation hashes, videos found and excluded, counts.

    Args:
        ds: the dataset as evaluated (excluded videos already dropped).
        split: the benchmark split name the user asked for.
        bench: its definition (None for datasets without a pinned protocol split).
        listed: videos the annotations list (found + excluded).
    """
    per_video: dict[int, int] = {}
    for v in ds.caption_to_video.tolist():
        per_video[v] = per_video.get(v, 0) + 1
    counts = list(per_video.values()) or [0]
    record: dict[str, Any] = {
        "name": ds.name,
        "split": split,
        "reader_split": ds.split,
        "root": str(ds.root),
        "annotations": annotation_hashes(ds.root),
        "videos_listed": listed,
        "videos_evaluated": len(ds.videos),
        "queries": len(ds.captions),
        "captions_per_video": {"min": min(counts), "max": max(counts)},
        "query_rule": bench.queries if bench else "all captions",
        "excluded": len(ds.skipped),
        "excluded_videos": [f"{vid}: {why}" for vid, why in ds.skipped[:MAX_NAMED]],
        "expected_videos": bench.videos if bench else None,
        "expected_queries": bench.captions if bench else None,
    }
    record["complete"] = _complete(record)
    return record


def _complete(r: dict[str, Any]) -> bool:
    """Whether the evaluated data is the whole protocol split (what it can check)."""
    if r["excluded"]:
        return False
    for have, want in (("videos_evaluated", "expected_videos"), ("queries", "expected_queries")):
        if r[want] is not None and r[have] != r[want]:
            return False
    return True


def annotation_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of the annotation files at ``root``'s top level and in ``annotations/``.

    Why these: readers take their annotation files from there; videos are not hashed (hundreds of
    gigabytes) but each one's presence is counted on the card.
    """
    root = Path(root)
    out = {}
    for folder in (root, root / "annotations"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in _ANNOTATION_SUFFIXES:
                out[str(path.relative_to(root))] = sha256_file(path)
    return out
