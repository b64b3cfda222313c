"""Index one folder with many processes or machines: each rank encodes a share, one writes the index.

Why: encoding is nearly all the cost of indexing (decoding and the image tower, per frame), and it
splits evenly by video; writing the index is seconds. So under ``torchrun`` or Slurm
(:func:`vrlib.features.process_rank`), rank ``r`` of ``W`` encodes the pending videos ``i`` with
``i % W == r`` into the shared feature cache (the pattern of clip-video-encode and video2dataset's
Slurm distributor) and leaves a done marker naming its share; rank 0, after its own share, waits
for every marker, then runs the ordinary :meth:`~vrlib.index.VideoIndex.update`, which finds every
video in the cache and encodes nothing. ``python -m vrlib index DIR --merge W`` is that last step
alone, for job arrays whose ranks are not alive at the same time.

What makes it safe to kill and rerun: shards are written atomically as they fill and a rerun of a
rank encodes only what its shards do not hold (the cache's resume); a marker names the exact
videos of its share (content keys: id, path, size, mtime), so a marker left by an earlier run over
other files never counts. Needs: the same folder, ``--cache-dir`` and options on every rank, on a
file system every rank sees.
"""

from __future__ import annotations

import os
import sys
import time

from vrlib.index.video_index import VideoIndex

POLL_SECONDS = 2.0


def encode_share(
    index: VideoIndex,
    rank: int,
    world_size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Encode share ``rank`` of ``world_size`` of the videos ``index.update()`` would encode.

    Returns:
        the extraction's counts (``videos``, ``cached``, ``encoded``, ``skipped``, ...).
    """
    from types import SimpleNamespace

    from vrlib.features import extract_frame_features
    from vrlib.paths import feature_cache_dir

    feats = extract_frame_features(
        SimpleNamespace(videos=index.pending()[2]),
        index._checked(None),
        index.sampling,
        cache_dir=feature_cache_dir() if cache_dir is None else cache_dir,
        batch_size=batch_size,
        num_workers=num_workers,
        on_error="skip",
        seed=index.manifest["seed"],
        progress=progress,
        rank=rank,
        world_size=world_size,
    )
    return dict(feats.stats)


def unfinished_shares(
    index: VideoIndex, world_size: int, cache_dir: str | os.PathLike | None = None
) -> list[int]:
    """Ranks of a ``world_size``-rank run whose share of ``index``'s pending videos is not done."""
    from types import SimpleNamespace

    from vrlib.features import share_done
    from vrlib.paths import feature_cache_dir

    cache = feature_cache_dir() if cache_dir is None else cache_dir
    videos = SimpleNamespace(videos=index.pending()[2])
    encoder, seed = index._checked(None), index.manifest["seed"]
    return [
        r for r in range(world_size)
        if not share_done(videos, encoder, index.sampling, cache, r, world_size, seed=seed)
    ]  # fmt: skip


def wait_for_shares(
    index: VideoIndex,
    world_size: int,
    cache_dir: str | os.PathLike | None,
    timeout: float,
) -> list[int]:
    """Wait until every share is done or ``timeout`` seconds passed; returns the ranks still missing."""
    deadline = time.monotonic() + timeout
    missing = unfinished_shares(index, world_size, cache_dir)
    if missing:
        print(f"rank 0: waiting for ranks {missing} of {world_size}", file=sys.stderr, flush=True)
    while missing and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        missing = unfinished_shares(index, world_size, cache_dir)
    return missing


def run_share(index: VideoIndex, args, rank: int, world_size: int, extract: dict) -> int | None:
    """What rank ``rank`` does under ``python -m vrlib index``: None when it should write the index.

    Ranks above 0 encode their share and stop (exit status 0); rank 0 encodes its share, then
    waits (``--wait`` seconds) for the others. ``--merge W`` encodes nothing and only checks that
    the ``W`` shares are done. A missing share is an error (exit status 2) naming the ranks.
    """
    if args.merge is not None:
        if args.merge < 1:
            print(
                f"error: --merge takes the number of ranks (>= 1), got {args.merge}",
                file=sys.stderr,
            )
            return 2
        world_size = args.merge
    else:
        stats = encode_share(index, rank, world_size, **extract)
        print(
            f"rank {rank} of {world_size}: {stats['videos']} videos "
            f"({stats['encoded']} encoded, {stats['cached']} cached, {stats['skipped']} skipped)",
            flush=True,
        )
        if rank != 0:
            return 0
    wait = 0.0 if args.merge else args.wait
    missing = wait_for_shares(index, world_size, extract.get("cache_dir"), wait)
    if missing:
        print(
            f"error: ranks {missing} of {world_size} have not finished their share (no done marker "
            "in the feature cache): rerun them with the same RANK/WORLD_SIZE and options, or run "
            "`index` without --merge to encode the rest in this process",
            file=sys.stderr,
        )
        return 2
    return None
