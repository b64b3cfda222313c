"""``ensure_expert`` and the command line: the preset's expert, trained once, locked, reused."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from vrlib.io import exclusive, remove_stale_temporaries
from vrlib.pretrain.config import MODEL_NAME, PRESETS, PretrainConfig, config_record
from vrlib.pretrain.images import image_set_sha
from vrlib.pretrain.loop import pretrain_expert, sidecar_path, text_tower_record


def preset_settings(preset: str, model: str = MODEL_NAME) -> dict[str, Any]:
    """Training settings of ``model``'s expert on a world preset (``PRESETS``), model included."""
    if model not in PRESETS:
        raise ValueError(f"no expert recipe for model {model!r}; valid: {', '.join(PRESETS)}")
    if preset not in PRESETS[model]:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS[model])}")
    return {**PRESETS[model][preset], "model_name": model}


def _world(
    preset: str, seed: int, world: str | os.PathLike | None, overrides: dict | None = None
) -> Path:
    from vrlib.paths import world_dir

    if world is not None:
        return Path(world).expanduser()
    from vrlib.data.synthetic import ensure_world

    return Path(
        ensure_world(
            world_dir(preset, seed, overrides), preset=preset, seed=seed, **(overrides or {})
        )
    )


def ensure_expert(
    preset: str = "default",
    seed: int = 0,
    device: str | None = None,
    model: str = MODEL_NAME,
    overrides: dict | None = None,
    without_words: tuple[str, ...] | list[str] = (),
) -> Path:
    """The preset's expert checkpoint of ``model`` (``vrlib-tiny``, or ``vrlib-tiny-vit32`` for
    study 04), generating the world and training the model if missing. ``overrides``: world
    knobs that change the stills (a negative control such as ``{"motion_image_share": 0.0}``):
    that world's expert, trained on its own stills with the preset's recipe.
    ``without_words``: an expert of its own that never saw these shapes or colours (its training
    stills leave out every image showing one; study 04's Table 2), same recipe otherwise.

    A finished checkpoint with the preset's current settings returns at once; an interrupted one
    resumes; one trained with other settings (an older ``PRESETS``) is retrained, like
    ``ensure_world`` regenerates a world whose parameters changed.
    """
    from vrlib.paths import expert_path

    settings = preset_settings(preset, model)  # an unknown model fails before any work
    words = tuple(sorted(set(without_words)))  # one name and one config for any order
    if words:
        settings["without_words"] = words
    out = expert_path(preset, seed, model, overrides, words)
    donor = None
    if settings.get("text_from"):  # its text tower: that model's expert of the same stills
        donor = ensure_expert(preset, seed, device, settings["text_from"], overrides, words)
    return _ensure_locked(out, _world(preset, seed, None, overrides), seed, device, settings, donor)


def _ensure_locked(out: Path, world: Path, seed: int, device: str | None,
                   settings: dict[str, Any], text_tower: Path | None = None) -> Path:  # fmt: skip
    """``_ensure_expert`` under ``out``'s lock, after clearing what a killed trainer left: one
    process trains a checkpoint, and one waiting for it reuses the result."""
    with exclusive(out, f"training the expert {out}"):
        remove_stale_temporaries(out)
        return _ensure_expert(out, world, seed, device, settings, text_tower)


def _ensure_expert(out: Path, world: Path, seed: int, device: str | None,
                   settings: dict[str, Any], text_tower: Path | None = None) -> Path:  # fmt: skip
    if out.is_file():
        ckpt = torch.load(out, map_location="cpu", weights_only=True)
        wanted = config_record(PretrainConfig(seed=seed, **settings))
        summary = ckpt.get("summary", {})
        donor = text_tower_record(text_tower) if text_tower is not None else None
        problems = [what for what, differs in (
            ("other settings", ckpt.get("config") != wanted),
            ("another image set", summary.get("image_set_sha") != image_set_sha(world)),
            ("another text tower", summary.get("text_tower") != donor),
        ) if differs]  # fmt: skip
        if problems:
            what = problems[0]
            print(f"pretrain: {out} was trained with {what}; retraining")
            out.unlink()
            sidecar_path(out).unlink(missing_ok=True)
        elif ckpt.get("epoch", 0) >= settings["epochs"]:
            return out
    pretrain_expert(world, out, seed=seed, device=device, text_tower=text_tower, **settings)
    return out


def pretrain_from_cli(args: argparse.Namespace) -> int:
    """``python -m vrlib pretrain``: train (or resume) the expert of a preset world, print the
    summary, and the checkpoint's path alone on the last line (for ``$(... | tail -1)``).

    An unknown preset or model is one ``error:`` line and exit status 2, before any work.
    """
    import sys

    from vrlib.paths import expert_path
    from vrlib.pretrain.images import known_words

    model = args.model or MODEL_NAME
    try:
        settings = preset_settings(args.preset, model)
    except ValueError as e:
        print(f"error: --preset/--model: {e}", file=sys.stderr)
        return 2
    without = []
    if args.without_words:
        try:
            without = known_words(args.without_words.split(","))
        except ValueError as e:
            print(f"error: --without-words: {e}", file=sys.stderr)
            return 2
        settings["without_words"] = tuple(without)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    out = Path(args.out or expert_path(args.preset, args.seed, model, without_words=without))
    world = _world(args.preset, args.seed, args.world)
    donor = None
    if settings.get("text_from"):  # the recipe's text tower: that model's expert, same stills
        donor = out.with_name(f"{out.stem}-text-{settings['text_from']}.pt")
        if args.world is None and args.out is None:  # the preset's: shared with ensure_expert
            donor = expert_path(args.preset, args.seed, settings["text_from"], None, without)
        recipe = preset_settings(args.preset, settings["text_from"])
        _ensure_locked(donor, world, args.seed, args.device,
                       recipe | ({"without_words": tuple(without)} if without else {}))  # fmt: skip
    # the same lock as ensure_expert: a study (or another pretrain) that wants this checkpoint
    # meanwhile waits for it instead of training it a second time into the same file
    with exclusive(out, f"training the expert {out}"):
        remove_stale_temporaries(out)
        summary = pretrain_expert(
            world, out, seed=args.seed, device=args.device, text_tower=donor, **settings
        )
    val = summary["val"]
    print(
        f"{summary['epochs_done']} epochs, {summary['train_images']} train images, "
        f"val image->text R@1 {val['i2t_R@1']:.1f}, text->image R@1 {val['t2i_R@1']:.1f}, "
        f"{summary['wall_time_s']:.0f} s; summary in {sidecar_path(out)}"
    )
    ceiling = summary.get("val_ceiling")
    if ceiling:
        print(
            f"ceiling (an ideal model, given the captions' ambiguity): image->text R@1 "
            f"{ceiling['i2t_R@1']:.1f}, text->image R@1 {ceiling['t2i_R@1']:.1f}"
        )
    print(out)
    return 0
