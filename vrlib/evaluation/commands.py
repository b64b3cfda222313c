"""What ``python -m vrlib eval`` does (argparse stays in ``cli.py``).

Three ways in, one card out: a model (``--model/--pretrained``) on a benchmark, embeddings
brought from elsewhere (``--video-embeddings/--text-embeddings`` with id files), or a similarity
matrix (``--similarity``). ``--leaderboard DIR`` rebuilds a leaderboard from a folder of cards.
``--compare`` prints a table of cards and refuses cards whose
protocols differ. Errors (unknown preset, split or dataset, missing videos, missing weights) are
one line on stderr naming the bad value and the valid choices, exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def add_eval_args(p: Any) -> None:
    """The options of ``vrlib eval`` (called by ``cli.py``)."""
    p.add_argument(
        "--model", default=None, help="open_clip architecture, xclip, hf-clip or hf-siglip"
    )
    p.add_argument(
        "--pretrained", default=None, help="tag, checkpoint, transformers folder, expert or random"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="msrvtt, msvd, lsmdc, vatex, didemo, activitynet, youcook2, synthetic, folder",
    )
    p.add_argument(
        "--root", type=Path, default=None, help="dataset folder (synthetic: the world's)"
    )
    p.add_argument("--split", default=None, help="the protocol split, e.g. 1k-A, test, val1")
    p.add_argument(
        "--protocol",
        default="clip4clip",
        help="preset: clip4clip, clip2video, frozen, clip_benchmark, portillo, mmeb",
    )
    p.add_argument(
        "--dsl",
        action="store_true",
        help="also report dual-softmax numbers (flagged, never the headline)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="exclude missing videos (counted on the card) instead of failing",
    )
    p.add_argument(
        "--video-dir", default=None, help="where the videos are, if not in the dataset's layout"
    )
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the card files (default $VRLIB_HOME/cards)",
    )
    p.add_argument(
        "--leaderboard",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="rebuild a leaderboard from the cards in the DIRs (--out FILE, default reports/leaderboard.md)",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        default=None,
        metavar="CARD",
        help="compare card JSON files",
    )
    p.add_argument(
        "--video-embeddings", type=Path, default=None, help=".npy (V, d) brought embeddings"
    )
    p.add_argument(
        "--text-embeddings", type=Path, default=None, help=".npy (C, d) brought embeddings"
    )
    p.add_argument(
        "--video-ids", type=Path, default=None, help="text file: one video id per row/column"
    )
    p.add_argument("--text-ids", type=Path, default=None, help="text file: each caption's video id")
    p.add_argument("--similarity", type=Path, default=None, help=".npy (C, V) similarity matrix")
    p.add_argument("--name", default=None, help="the model's name on the card (brought embeddings)")
    p.add_argument(
        "--world-preset", default="default", help="the world whose expert 'expert' means"
    )
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--intervals", type=int, default=1000, help="bootstrap draws (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="decoding processes")
    p.add_argument("--device", default=None)


def eval_from_cli(args: Any) -> int:
    """Run the evaluation ``args`` ask for; print the card; write it under ``--out``."""
    from vrlib.data.datasets import DatasetError
    from vrlib.data.video import VideoDecodeError
    from vrlib.encoders import WeightsUnavailableError
    from vrlib.evaluation.card import ProtocolMismatchError

    try:
        if args.compare:
            return _compare(args.compare)
        if args.leaderboard:
            from vrlib.evaluation.leaderboard import write_leaderboard

            print(write_leaderboard(args.leaderboard, args.out or Path("reports/leaderboard.md")))
            return 0
        card = _card(args)
    except ProtocolMismatchError as e:
        print(f"error: refusing to compare: {e}", file=sys.stderr)
        return 2
    except DatasetError as e:
        hint = (
            ""
            if args.allow_missing
            else " (or pass --allow-missing to exclude missing videos, counted on the card)"
        )
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    except (
        WeightsUnavailableError,
        FileNotFoundError,
        ValueError,
        KeyError,
        VideoDecodeError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if card is None:  # a rank other than 0 under torchrun: rank 0 writes the card
        return 0
    from vrlib.paths import vrlib_home

    paths = card.save(args.out or vrlib_home() / "cards")
    print(card.to_json() if args.json else card.to_markdown())
    print(f"card: {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def _card(args: Any):
    from vrlib.evaluation import evaluate_embeddings, evaluate_model, evaluate_similarity

    common = {
        "protocol": args.protocol,
        "dsl": args.dsl,
        "intervals": args.intervals,
        "seed": args.seed,
    }
    named = {
        "name": args.name or "embeddings",
        "dataset": args.dataset or "custom",
        "split": args.split or "test",
    }
    if args.similarity is not None:
        _need(args, "--similarity", "text_ids", "video_ids")
        return evaluate_similarity(
            args.similarity, args.text_ids, args.video_ids, **named, **common
        )
    if args.video_embeddings is not None or args.text_embeddings is not None:
        _need(
            args,
            "--video-embeddings",
            "video_embeddings",
            "text_embeddings",
            "video_ids",
            "text_ids",
        )
        return evaluate_embeddings(
            args.video_embeddings,
            args.text_embeddings,
            args.video_ids,
            args.text_ids,
            **named,
            **common,
        )
    if args.model is None or args.dataset is None or args.split is None:
        raise ValueError(
            "give --model, --dataset and --split (or --video-embeddings, --similarity, --compare)"
        )
    root = args.root if args.root is not None else _default_root(args)
    return evaluate_model(
        args.model, args.pretrained, args.dataset, root, args.split, **common,
        allow_missing=args.allow_missing, video_dir=args.video_dir, device=args.device,
        cache_dir=args.cache_dir, batch_size=args.batch_size, num_workers=args.workers,
        world_preset=args.world_preset, world_seed=args.world_seed,
    )  # fmt: skip


def _need(args: Any, what: str, *names: str) -> None:
    missing = ["--" + n.replace("_", "-") for n in names if getattr(args, n) is None]
    if missing:
        raise ValueError(f"{what} also needs {', '.join(missing)}")


def _default_root(args: Any) -> Path:
    """Only the embedded world has a default folder; it must exist (``python -m vrlib synth``)."""
    if args.dataset != "synthetic":
        raise ValueError(f"--dataset {args.dataset} needs --root DIR (the dataset's folder)")
    from vrlib.paths import world_dir

    root = world_dir(args.world_preset, args.world_seed)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no world at {root}; build it with: python -m vrlib synth --preset {args.world_preset}"
        )
    return root


def _compare(paths: list[Path]) -> int:
    from vrlib.evaluation.card import ResultCard, compare_cards

    cards = [ResultCard.load(p) for p in paths]
    print(compare_cards(cards, [p.stem for p in paths]))
    return 0


__all__ = ["add_eval_args", "eval_from_cli"]
