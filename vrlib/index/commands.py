"""What ``python -m vrlib index`` and ``python -m vrlib search`` do (argparse stays in ``cli.py``).

``index`` on a folder that already has an index updates it (only new and changed files are
encoded, deleted ones dropped); the same folder indexed with another model is refused, so an index
never mixes embedding spaces. Files that cannot be decoded are named with the reason on stderr and
in the manifest; they do not stop the run (exit status 0), since one broken file in a folder of
thousands should not cost the rest. ``search`` loads the model the manifest names unless told
otherwise, and refuses a different one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vrlib.index.queries import open_encoder
from vrlib.index.store import MANIFEST
from vrlib.index.video_index import IndexMismatchError, VideoIndex

DEFAULT_INDEX_NAME = ".vrlib-index"


def index_from_cli(args) -> int:
    """Build or update the index of ``args.video_dir``; prints a summary and the skipped files.

    Under torchrun or Slurm (more than one rank) or with ``--merge``, the encoding is shared
    between ranks first (:mod:`vrlib.index.shards`) and rank 0 writes the index.
    """
    from vrlib.data.sampling import SamplingConfig
    from vrlib.features import process_rank
    from vrlib.index.shards import run_share

    out = args.out or args.video_dir / DEFAULT_INDEX_NAME
    sampling = SamplingConfig(strategy="fps", target_fps=args.fps, max_frames=args.max_frames)
    extract = {
        "cache_dir": args.cache_dir,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
    }
    rank, world_size = process_rank()
    if args.merge is not None and args.merge < 1:
        print(f"error: --merge takes the number of ranks (>= 1), got {args.merge}", file=sys.stderr)
        return 2
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


def _rank_device(device: str | None, world_size: int) -> str | None:
    """Under torchrun with GPUs, rank ``LOCAL_RANK`` encodes on ``cuda:LOCAL_RANK`` by default."""
    import os

    if device is not None or world_size == 1 or "LOCAL_RANK" not in os.environ:
        return device
    import torch

    return f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else None


def _open_or_new(args, out: Path, encoder, sampling) -> VideoIndex | int:
    """The index at ``out`` checked against the options (exit status 2 if they differ), or a new one."""
    if not (out / MANIFEST).is_file():
        return VideoIndex.build(
            args.video_dir, encoder, sampling=sampling, aggregation=args.aggregation,
            keep_frames=not args.no_frames, encode=False,
        )  # fmt: skip
    index = VideoIndex.load(out)
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
    built = (index.manifest["aggregation"]["method"], index.sampling)
    if built != (args.aggregation, sampling):
        print(
            f"error: {out} was built with aggregation {built[0]!r} and sampling {built[1].key()}; "
            "an update keeps them: rerun with the same options or choose another --out",
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
    if (args.text is None) == (args.video is None):
        print("error: give either a query sentence or --video FILE", file=sys.stderr)
        return 2
    index = VideoIndex.load(args.index)
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
    query = args.text if args.video is None else args.video
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
