"""What ``python -m vrlib index`` and ``python -m vrlib search`` do (argparse stays in ``cli.py``).

``index`` on a folder that already has an index updates it (only new and changed files are
encoded, deleted ones dropped); the same folder indexed with another model is refused, so an index
never mixes embedding spaces. Files that cannot be decoded are named with the reason on stderr and
in the manifest; they do not stop the run (exit status 0), since one broken file in a folder of
thousands should not cost the rest. ``search`` loads the model the manifest names unless told
otherwise, and refuses a different one.

Every mistake a user can make on the command line (a missing folder, a folder with no videos, an
unknown aggregation, a folder that is not an index, a missing or undecodable query video,
``-k 0``, a blank query) is refused with one ``error: ...`` line and exit status 2, before a model
is loaded or a frame decoded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vrlib.index.queries import open_encoder
from vrlib.index.store import MANIFEST, finish_interrupted_save, index_lock, list_videos
from vrlib.index.video_index import IndexMismatchError, VideoIndex

DEFAULT_INDEX_NAME = ".vrlib-index"
# The options an update must repeat, by the manifest field they set (named when one differs).
_UPDATE_OPTIONS = {"target_fps": "--fps", "max_frames": "--max-frames"}


class UsageError(ValueError):
    """A command-line mistake, printed as one ``error: ...`` line (exit status 2)."""


def _refuse(e: Exception) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 2


def index_from_cli(args) -> int:
    """Build or update the index of ``args.video_dir``; prints a summary and the skipped files.

    The arguments are checked first (one ``error:`` line, no lock taken, no folder created). The
    rest of the run holds the index's lock: a second run on the same ``--out`` waits, then finds
    the first one's index and only what changed since (usually nothing) left to do. Under torchrun
    or Slurm (more than one rank) or with ``--merge``, the encoding is shared between ranks first
    (:mod:`vrlib.index.shards`) and rank 0 writes the index; only rank 0 takes the lock, so the
    ranks encode side by side.
    """
    from vrlib.features import process_rank

    try:
        args.video_dir = args.video_dir.expanduser()
        out = (args.out or args.video_dir / DEFAULT_INDEX_NAME).expanduser()
        _check_index_args(args)
        sampling = _sampling(args)
        if args.merge is not None and args.merge < 1:
            raise UsageError(f"--merge takes the number of ranks (>= 1), got {args.merge}")
    except UsageError as e:
        return _refuse(e)
    rank, world_size = process_rank()
    if rank != 0:
        return _index_holding_the_lock(args, out, sampling, rank, world_size)
    with index_lock(out):
        finish_interrupted_save(out)
        return _index_holding_the_lock(args, out, sampling, rank, world_size)


def _sampling(args):
    from vrlib.data.sampling import SamplingConfig

    try:
        return SamplingConfig(strategy="fps", target_fps=args.fps, max_frames=args.max_frames)
    except ValueError as e:
        raise UsageError(f"--fps/--max-frames: {e}") from None


def _index_holding_the_lock(args, out: Path, sampling, rank: int, world_size: int) -> int:
    from vrlib.index.shards import run_share

    extract = {
        "cache_dir": args.cache_dir,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
    }
    encoder = _encoder_or_none(args.model, args.pretrained, _rank_device(args.device, world_size))
    if encoder is None:
        return 2
    is_new = not (out / MANIFEST).is_file()
    index = _open_or_new(args, out, encoder, sampling)
    if isinstance(index, int):
        return index
    if world_size > 1 or args.merge is not None:
        status = run_share(index, args, rank, world_size, extract)
        if status is not None:
            return status
    counts = index.update(**extract)
    if is_new:
        counts = {k: counts[k] for k in ("added", "skipped", "encoded", "cached")}
    if args.ann:
        index.ann()
    index.save(out, dtype=args.dtype)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"{out}: {len(index)} videos indexed ({summary})")
    for s in index.manifest["skipped"]:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def _check_index_args(args) -> None:
    """What ``index`` can refuse before a model is loaded: the folder, its videos, the options."""
    from vrlib.aggregate import AGGREGATIONS

    try:
        list_videos(args.video_dir)
    except (NotADirectoryError, FileNotFoundError) as e:
        raise UsageError(e) from None
    if args.aggregation not in AGGREGATIONS.names():
        raise UsageError(
            f"--aggregation: unknown aggregation {args.aggregation!r}; "
            f"valid: {', '.join(AGGREGATIONS.names())}"
        )
    for flag, value in (("--max-frames", args.max_frames), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")


def _differing_options(index, aggregation: str, sampling) -> list[str]:
    """``--fps 1.0 (not 2.0)`` for each option an update gives differently from the index's."""
    built = index.sampling
    differ = [
        f"{flag} {getattr(built, field)} (not {getattr(sampling, field)})"
        for field, flag in _UPDATE_OPTIONS.items()
        if getattr(built, field) != getattr(sampling, field)
    ]
    if built.key() != sampling.key() and not differ:  # a field no option sets: say it whole
        differ.append(f"sampling {built.key()} (not {sampling.key()})")
    method = index.manifest["aggregation"]["method"]
    if method != aggregation:
        differ.append(f"--aggregation {method} (not {aggregation})")
    return differ


def _rank_device(device: str | None, world_size: int) -> str | None:
    """Under torchrun with GPUs, rank ``LOCAL_RANK`` encodes on ``cuda:LOCAL_RANK`` by default."""
    import os

    if device is not None or world_size == 1 or "LOCAL_RANK" not in os.environ:
        return device
    import torch

    return f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else None


def _open_or_new(args, out: Path, encoder, sampling) -> VideoIndex | int:
    """The index at ``out`` checked against the options (exit status 2 naming what differs), or a
    new one. A damaged index comes back with its damaged rows marked changed (encoded again)."""
    if not (out / MANIFEST).is_file():
        return VideoIndex.build(
            args.video_dir, encoder, sampling=sampling, aggregation=args.aggregation,
            keep_frames=not args.no_frames, encode=False,
        )  # fmt: skip
    index = VideoIndex.load(out, repair=True)
    try:
        index.attach(encoder)
    except IndexMismatchError as e:
        print(f"error: {out}: {e} (or choose another --out)", file=sys.stderr)
        return 2
    if Path(index.manifest["video_dir"]) != args.video_dir.expanduser().resolve():
        print(
            f"error: {out} indexes {index.manifest['video_dir']}, not {args.video_dir}",
            file=sys.stderr,
        )
        return 2
    differ = _differing_options(index, args.aggregation, sampling)
    if differ:
        print(
            f"error: {out} was built with {', '.join(differ)}; an update keeps them: "
            "rerun with the same options or choose another --out",
            file=sys.stderr,
        )
        return 2
    return index


def _encoder_or_none(model: str, pretrained: str, device: str | None):
    """The encoder, or None after printing why it cannot be loaded (unknown model, no weights)."""
    from vrlib.encoders import WeightsUnavailableError

    try:
        return open_encoder(model, pretrained, device=device)
    except (WeightsUnavailableError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def search_from_cli(args) -> int:
    """Print the top-k of one query as a table (rank, score, time, id, path) or as JSON."""
    try:
        query = _checked_query(args)
        index = _load_index(args.index)
    except UsageError as e:
        return _refuse(e)
    m = index.manifest
    if args.model is not None and args.model != m["model"]:
        print(
            f"error: {args.index}: built with model {m['model']!r}, not {args.model!r}",
            file=sys.stderr,
        )
        return 2
    encoder = _encoder_or_none(m["model"], args.pretrained or m["pretrained"], args.device)
    if encoder is None:
        return 2
    try:
        index.attach(encoder)
    except IndexMismatchError as e:
        print(f"error: {args.index}: {e}", file=sys.stderr)
        return 2
    hits = index.search(query, k=args.k, method=args.method)[0]
    if args.json:
        rows = [h.__dict__ for h in hits]
        print(json.dumps({"query": str(query), "index": str(args.index), "hits": rows}, indent=2))
        return 0
    print(f"query: {query}   ({len(index)} videos, {m['model']}, {m['aggregation']['method']})")
    print(f"{'rank':>4}  {'score':>7}  {'time':>7}  {'id':<32}  path")
    for h in hits:
        when = f"{h.time:6.1f}s" if h.time is not None else "      -"
        print(f"{h.rank:>4}  {h.score:7.4f}  {when}  {h.video_id:<32}  {h.path}")
    return 0


def _checked_query(args) -> str | Path:
    """The query (a sentence, or a video ``Path``) once it is known to be usable, else UsageError."""
    from vrlib.data.datasets import VIDEO_EXTENSIONS
    from vrlib.data.video import VideoDecodeError, probe

    if (args.text is None) == (args.video is None):
        raise UsageError("give either a query sentence or --video FILE")
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if args.video is None:
        if not args.text.strip():
            raise UsageError("the query sentence is blank")
        return args.text
    video = args.video.expanduser()
    if not video.is_file():
        raise UsageError(f"--video {video}: file not found")
    if video.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UsageError(
            f"--video {video}: not a video file (expected {', '.join(VIDEO_EXTENSIONS)})"
        )
    try:
        probe(video)
    except VideoDecodeError as e:
        raise UsageError(f"--video {video}: cannot be decoded ({e})") from None
    return video


def _load_index(folder: Path) -> VideoIndex:
    """The index in ``folder``, or UsageError naming the folder (or the damaged file)."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; build an index with `python -m vrlib index`")
    if not (folder / MANIFEST).is_file():
        raise UsageError(
            f"{folder}: not an index folder (no {MANIFEST}); build one with `python -m vrlib index`"
        )
    try:
        return VideoIndex.load(folder)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{folder}: cannot read this index ({e})") from None
