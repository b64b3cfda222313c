"""``python -m vrlib`` — the workbench's command line.

Why one module: argparse lives here and in ``report.py`` only (STYLE.md), so the library can be
imported in a notebook without side effects. Each subcommand is a small function that parses
nothing itself and calls one library function; heavy imports happen inside those functions so
that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Decorator: register ``run(args)`` as subcommand ``name``; ``add_args`` fills its parser."""

    def bind(run: Callable[[argparse.Namespace], int | None]):
        COMMANDS[name] = (help, add_args, run)
        return run

    return bind


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset", default="smoke", help="size preset: smoke (seconds) or default (minutes)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $VRLIB_HOME/worlds/PRESET-seedSEED)",
    )
    p.add_argument("--force", action="store_true", help="regenerate even if the world exists")


@command(
    "synth", "generate the embedded synthetic world (images, videos, captions, splits)", _synth_args
)
def _synth(args: argparse.Namespace) -> int:
    from vrlib.data.synthetic import ensure_world, generate_world
    from vrlib.paths import world_dir

    out = args.out or world_dir(args.preset, args.seed)
    if args.force:
        path = generate_world(out, preset=args.preset, seed=args.seed)
    else:
        path = ensure_world(out, preset=args.preset, seed=args.seed)
    print(path)
    return 0


def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help="world preset whose images train the expert")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--world", type=Path, default=None, help="world folder (default: the preset's)")
    p.add_argument(
        "--out", type=Path, default=None, help="checkpoint path (default: $VRLIB_HOME/experts/...)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="override the preset's number of epochs"
    )
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch")
    p.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    p.add_argument(
        "--model",
        default=None,
        help="the expert's architecture: vrlib-tiny (default) or vrlib-tiny-vit32 (study 04)",
    )
    p.add_argument(
        "--without-words",
        default=None,
        help="comma-separated shapes or colours the expert never sees (every still showing one is "
        "left out; study 04's unseen_shapes.yaml), e.g. cross,diamond,square or blue,red",
    )
    p.add_argument("--device", default=None)


@command(
    "pretrain",
    "train an image-text expert (vrlib-tiny by default) on the world's static images",
    _pretrain_args,
)
def _pretrain(args: argparse.Namespace) -> int:
    from vrlib.pretrain import pretrain_from_cli

    return pretrain_from_cli(args)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study name, e.g. zero_shot_aggregation")
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="parameter YAML (default: parameters/STUDY/default.yaml)",
    )
    p.add_argument("--out-root", type=Path, default=Path("reports"))
    p.add_argument("--no-readme", action="store_true", help="do not regenerate reports/README.md")


@command("report", "execute a study notebook with papermill into reports/STUDY/NAME/", _report_args)
def _report(args: argparse.Namespace) -> int:
    from vrlib.report import report_from_cli

    return report_from_cli(args)


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params-name", default="default", help="which parameter file of every study to run"
    )
    p.add_argument("--out-root", type=Path, default=Path("reports"))


@command(
    "reproduce",
    "build the default world and expert if missing, then run every study",
    _reproduce_args,
)
def _reproduce(args: argparse.Namespace) -> int:
    from vrlib.report import reproduce_from_cli

    return reproduce_from_cli(args)


def _index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video_dir", type=Path, help="folder of videos (searched recursively)")
    p.add_argument(
        "--model", required=True, help="open_clip architecture, e.g. ViT-B-32 or vrlib-tiny"
    )
    p.add_argument(
        "--pretrained", required=True, help="open_clip weights tag (e.g. openai) or checkpoint path"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="index folder (default: VIDEO_DIR/.vrlib-index)"
    )
    p.add_argument("--aggregation", default="mean", help="registered aggregation (default mean)")
    p.add_argument("--fps", type=float, default=1.0, help="frames sampled per second (default 1)")
    p.add_argument("--max-frames", type=int, default=32, help="at most this many frames a video")
    p.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="stored embeddings (default float16: half the bytes a search reads)",
    )
    p.add_argument("--no-frames", action="store_true", help="do not keep frame features")
    p.add_argument("--ann", action="store_true", help="also build and save the faiss IVF index")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache (default: VRLIB_HOME)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="decoding processes")
    p.add_argument("--device", default=None)
    p.add_argument(
        "--wait",
        type=float,
        default=24 * 3600.0,
        help="under torchrun/Slurm: seconds rank 0 waits for the other ranks' shares (default 1 day)",
    )
    p.add_argument(
        "--merge",
        type=int,
        default=None,
        metavar="WORLD_SIZE",
        help="encode nothing: write the index from the shares of a finished WORLD_SIZE-rank run",
    )


@command(
    "index", "index a folder of videos for text or video search (rerun to update)", _index_args
)
def _index(args: argparse.Namespace) -> int:
    from vrlib.index.commands import index_from_cli

    return index_from_cli(args)


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", type=Path, help="index folder written by `python -m vrlib index`")
    p.add_argument("text", nargs="?", default=None, help="the query sentence")
    p.add_argument(
        "--video", type=Path, default=None,
        help="search by this video instead. Scores are cosine similarities; under a k-means index "
        "each centroid of the query video is scored by its best match in a video and the k scores "
        "are averaged, so a video scores 1.0 against itself (a reversed twin, the same frames in "
        "another order, may tie it: k-means ignores order)",
    )  # fmt: skip
    p.add_argument("-k", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--method", choices=("auto", "exact", "ann"), default="auto")
    p.add_argument("--model", default=None, help="default: the index's model")
    p.add_argument("--pretrained", default=None, help="default: the index's weights")
    p.add_argument("--device", default=None)


@command("search", "rank the videos of an index for a sentence (or a video)", _search_args)
def _search(args: argparse.Namespace) -> int:
    from vrlib.index.commands import search_from_cli

    return search_from_cli(args)


def _eval_args(p: argparse.ArgumentParser) -> None:
    from vrlib.evaluation.commands import add_eval_args

    add_eval_args(p)


@command(
    "eval",
    "score a model (or brought embeddings) on a benchmark under a named protocol; write a card",
    _eval_args,
)
def _eval(args: argparse.Namespace) -> int:
    from vrlib.evaluation.commands import eval_from_cli

    return eval_from_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vrlib",
        description="Video Retrieval Workbench: text-to-video retrieval studies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(COMMANDS[args.command][2](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
