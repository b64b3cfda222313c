"""``ensure_expert`` and the command line: the preset's expert, trained once, locked, reused."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vrlib.io import exclusive, remove_stale_temporaries
from vrlib.pretrain.images import image_set_sha
from vrlib.pretrain.loop import (
    PRESETS,
    PretrainConfig,
    pretrain_expert,
    sidecar_path,
)


def preset_settings(preset: str) -> dict[str, Any]:
    """Default training settings of a world preset (``PRESETS``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return dict(PRESETS[preset])


def _world(preset: str, seed: int, world: str | os.PathLike | None) -> Path:
    from vrlib.paths import world_dir

    if world is not None:
        return Path(world).expanduser()
    from vrlib.data.synthetic import ensure_world

    return Path(ensure_world(world_dir(preset, seed), preset=preset, seed=seed))


def ensure_expert(preset: str = "default", seed: int = 0, device: str | None = None) -> Path:
    """The preset's expert checkpoint, generating the world and training the model if missing.

    A finished checkpoint with the preset's current settings returns at once; an interrupted one
    resumes; one trained with other settings (an older ``PRESETS``) is retrained, like
    ``ensure_world`` regenerates a world whose parameters changed.
    """
    from vrlib.paths import expert_path

    out = expert_path(preset, seed)
    with exclusive(out, f"training the expert {out}"):  # a waiting process reuses the result
        remove_stale_temporaries(out)
        return _ensure_expert(out, preset, seed, device)


def _ensure_expert(out: Path, preset: str, seed: int, device: str | None) -> Path:
    settings = preset_settings(preset)
    world = _world(preset, seed, None)
    if out.is_file():
        ckpt = torch.load(out, map_location="cpu", weights_only=True)
        wanted = asdict(PretrainConfig(seed=seed, **settings))
        trained_on = ckpt.get("summary", {}).get("image_set_sha")
        if ckpt.get("config") != wanted or trained_on != image_set_sha(world):
            what = "other settings" if ckpt.get("config") != wanted else "another image set"
            print(f"pretrain: {out} was trained with {what}; retraining")
            out.unlink()
            sidecar_path(out).unlink(missing_ok=True)
        elif ckpt.get("epoch", 0) >= settings["epochs"]:
            return out
    pretrain_expert(world, out, seed=seed, device=device, **settings)
    return out


def pretrain_from_cli(args: argparse.Namespace) -> int:
    """``python -m vrlib pretrain``: train (or resume) the expert of a preset world and print the summary."""
    from vrlib.paths import expert_path

    settings = preset_settings(args.preset)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if args.model is not None:
        if args.out is None:  # the preset's path is where every study loads vrlib-tiny from
            raise SystemExit(
                f"pretrain --model {args.model}: give --out (the default path is vrlib-tiny's)"
            )
        settings["model_name"] = args.model
    out = args.out or expert_path(args.preset, args.seed)
    summary = pretrain_expert(
        _world(args.preset, args.seed, args.world),
        out,
        seed=args.seed,
        device=args.device,
        **settings,
    )
    val = summary["val"]
    print(
        f"{out}: {summary['epochs_done']} epochs, {summary['train_images']} train images, "
        f"val image->text R@1 {val['i2t_R@1']:.1f}, text->image R@1 {val['t2i_R@1']:.1f}, "
        f"{summary['wall_time_s']:.0f} s; summary in {sidecar_path(out)}"
    )
    ceiling = summary.get("val_ceiling")
    if ceiling:
        print(
            f"ceiling (an ideal model, given the captions' ambiguity): image->text R@1 "
            f"{ceiling['i2t_R@1']:.1f}, text->image R@1 {ceiling['t2i_R@1']:.1f}"
        )
    return 0
