"""vrlib.pretrain: the expert trains, lowers the loss, resumes identically, and loads with load_clip."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from open_clip.loss import ClipLoss
from PIL import Image, ImageDraw

import vrlib.pretrain as pretrain
from vrlib.data import caption_ceiling
from vrlib.encoders import load_clip

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 220, 20),
}
SHAPES = ("square", "circle")
POSITIONS = {"left": 28, "right": 84}


def _write_world(root: Path, n_train: int = 48, n_val: int = 16) -> Path:
    """A miniature world in the layout of vrlib.data.synthetic: 112x112 PNGs + annotations/images.jsonl."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    combos = [(c, s, p) for c in COLOURS for s in SHAPES for p in POSITIONS]  # 16 distinct captions
    rows = []
    for i in range(n_train + n_val):
        colour, shape, pos = combos[i % len(combos)]
        img = Image.new("RGB", (112, 112), (90 + 5 * (i % 7), 90, 90))
        cx, cy, r = POSITIONS[pos], 56 + (i % 5) * 4 - 8, 18
        box = (cx - r, cy - r, cx + r, cy + r)
        (ImageDraw.Draw(img).rectangle if shape == "square" else ImageDraw.Draw(img).ellipse)(
            box, fill=COLOURS[colour]
        )
        path = f"images/img_{i:06d}.png"
        img.save(root / path)
        split = "train" if i < n_train else "val"
        rows.append(
            {
                "image_id": f"img_{i:06d}",
                "path": path,
                "caption": f"a {colour} {shape} on the {pos}",
                "split": split,
                "attributes": {  # the caption is one vrlib.data.synthetic could write for it
                    "background": "gray",
                    "objects": [
                        {"shape": shape, "colour": colour, "size": "small", "position": pos}
                    ],
                },
            }
        )
    (root / "annotations" / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return _write_world(tmp_path_factory.mktemp("tinyworld"))


KW = {"epochs": 2, "batch_size": 16, "lr": 5e-4, "warmup_steps": 2, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("expert") / "expert.pt"
    return out, pretrain.pretrain_expert(world, out, **KW)


def _train_loss(encoder, world: Path) -> float:
    """Contrastive loss over all training images in one batch, at the model's learnt temperature.

    With batch statistics (train mode): after 6 steps the ResNet's BatchNorm running statistics
    are still mostly their initial values, so eval mode would measure those, not what the steps
    optimised."""
    pixels, captions = pretrain.load_image_set(world, "train", encoder)
    encoder.model.train()
    with torch.no_grad():
        img, txt, scale = encoder.model(pixels.float(), encoder.tokenizer(captions))
    return ClipLoss()(img, txt, scale).item()


def test_pretraining_lowers_loss_and_result_loads_with_load_clip(world, trained):
    out, summary = trained
    before = _train_loss(
        load_clip("vrlib-tiny", device="cpu", init_seed=0), world
    )  # the run's initialisation
    expert = load_clip("vrlib-tiny", pretrained=str(out), device="cpu")
    after = _train_loss(expert, world)
    assert after < before - 0.1, (before, after)
    assert summary["epochs_done"] == 2 and summary["steps"] == 6 and summary["train_images"] == 48
    assert {"i2t_R@1", "t2i_R@1", "t2i_R@5"} <= set(summary["val"]) and summary["val"][
        "num_texts"
    ] == 16
    sidecar = json.loads(pretrain.sidecar_path(out).read_text())
    assert sidecar["val"] == summary["val"]
    # the ceiling sits beside the expert's R@1: here every val caption names colour, shape and
    # position, and two val images share each caption, so an ideal model finds one of them first
    assert sidecar["val_ceiling"] == caption_ceiling.world_ceiling(world, "val")
    assert sidecar["val_ceiling"]["t2i_R@1"] == 100.0 and sidecar["val_ceiling"]["i2t_R@1"] == 100.0
    assert sidecar["val_fraction_of_ceiling"]["t2i_R@1"] == summary["val"]["t2i_R@1"] / 100.0
    ckpt = torch.load(out, map_location="cpu", weights_only=True)  # no pickled objects
    assert ckpt["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng", "history"} <= set(ckpt)
    assert (
        len(ckpt["history"]) == 6 and ckpt["history"][0]["lr"] < ckpt["history"][1]["lr"]
    )  # warmup


def test_interrupted_run_resumes_to_identical_weights_and_finished_run_returns_at_once(
    world, trained, tmp_path, monkeypatch
):
    out_full, summary_full = trained
    out = tmp_path / "resumed.pt"
    real_eval, calls = pretrain.evaluate_image_text, []

    def crash_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second epoch, after the first checkpoint
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(pretrain.loop, "evaluate_image_text", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain_expert(world, out, **KW)
    assert torch.load(out, map_location="cpu", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(pretrain.loop, "evaluate_image_text", real_eval)

    summary = pretrain.pretrain_expert(world, out, **KW)
    assert summary["resumed_from_epoch"] == 1
    resumed = torch.load(out, map_location="cpu", weights_only=True)["model"]
    full = torch.load(out_full, map_location="cpu", weights_only=True)["model"]
    assert resumed.keys() == full.keys() and all(torch.equal(resumed[k], full[k]) for k in full)
    assert summary["val"] == summary_full["val"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run must not load data again")

    monkeypatch.setattr(pretrain.loop, "load_image_set", must_not_run)
    assert pretrain.pretrain_expert(world, out, **KW) == summary


def test_existing_checkpoint_with_other_settings_is_refused(world, trained):
    out, _ = trained
    with pytest.raises(ValueError, match="other settings.*'lr'"):
        pretrain.pretrain_expert(world, out, **{**KW, "lr": 1e-4})


def test_another_registered_architecture_trains_loads_by_its_name_and_is_kept_on_resume(
    world, tmp_path
):
    """model_name picks the open_clip config (here study 04's ViT, vrlib-tiny-vit32); the checkpoint
    loads under that name and not under vrlib-tiny's, and resuming it as another model is refused."""
    out = tmp_path / "vit.pt"
    kw = {**KW, "epochs": 1, "model_name": "vrlib-tiny-vit32"}
    summary = pretrain.pretrain_expert(world, out, **kw)
    assert summary["model_name"] == "vrlib-tiny-vit32" == summary["config"]["model_name"]
    expert = load_clip("vrlib-tiny-vit32", pretrained=str(out), device="cpu")
    assert type(expert.model.visual).__name__ == "VisionTransformer" and expert.embed_dim == 128
    default = load_clip("vrlib-tiny", pretrained=None, device="cpu")
    assert type(default.model.visual).__name__ == "ModifiedResNet"
    pixels, captions = pretrain.load_image_set(world, "val", expert)
    assert pretrain.evaluate_image_text(expert, pixels, captions) == summary["val"]
    with pytest.raises(ValueError, match="does not match the architecture"):
        load_clip("vrlib-tiny", pretrained=str(out), device="cpu")
    with pytest.raises(ValueError, match="other settings.*'model_name'"):
        pretrain.pretrain_expert(world, out, **{**kw, "model_name": "vrlib-tiny"})


def test_a_locked_text_tower_is_the_donors_bit_for_bit_and_only_the_image_tower_trains(
    world, trained, tmp_path
):
    """``text_from``: the ViT starts its text side from vrlib-tiny's expert and keeps it; the
    image tower and the temperature train; the setting is recorded and compared on resume."""
    donor_path, _ = trained
    out = tmp_path / "locked.pt"
    kw = {**KW, "epochs": 1, "model_name": "vrlib-tiny-vit32", "text_from": "vrlib-tiny"}
    summary = pretrain.pretrain_expert(world, out, text_tower=donor_path, **kw)
    assert summary["config"]["text_from"] == "vrlib-tiny"
    donor = torch.load(donor_path, map_location="cpu", weights_only=True)["model"]
    start = pretrain.loop.untrained_expert(
        pretrain.PretrainConfig(1, model_name="vrlib-tiny-vit32")
    )
    trained_vit = torch.load(out, map_location="cpu", weights_only=True)["model"]
    text = [k for k in trained_vit if k.startswith(pretrain.loop.TEXT_TOWER)]
    assert len(text) > 10 and all(torch.equal(trained_vit[k], donor[k]) for k in text)
    image = [k for k in trained_vit if k.startswith("visual.")]
    initial = start.model.state_dict()
    assert any(not torch.equal(trained_vit[k], initial[k]) for k in image)
    with pytest.raises(ValueError, match="text_from='vrlib-tiny' needs text_tower"):
        pretrain.pretrain_expert(world, tmp_path / "none.pt", **kw)
    with pytest.raises(ValueError, match="other settings.*'text_from'"):
        pretrain.pretrain_expert(world, out, **{**kw, "text_from": ""})
    with pytest.raises(ValueError, match="text_from must name another model"):
        pretrain.PretrainConfig(1, model_name="vrlib-tiny", text_from="vrlib-tiny")
    # a checkpoint without a text tower that fits: named, before any step
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"visual.conv1.weight": torch.zeros(1)}}, bad)
    with pytest.raises(ValueError, match="bad.pt: its text tower does not fit"):
        pretrain.pretrain_expert(world, tmp_path / "b.pt", text_tower=bad, **kw)
    # recorded only when set: an expert trained before the setting existed still matches
    assert "text_from" not in pretrain.config_record(pretrain.PretrainConfig(1))


def test_an_expert_whose_text_donor_was_trained_again_is_retrained(world, trained, tmp_path,
                                                                    capsys):  # fmt: skip
    """The donor's settings and images are kept in the summary: the same donor reuses the
    expert, another one (here: another seed) trains it again."""
    donor, _ = trained
    settings = {"epochs": 1, "batch_size": 16, "lr": 5e-4, "warmup_steps": 2,
                "model_name": "vrlib-tiny-vit32", "text_from": "vrlib-tiny"}  # fmt: skip
    vit = tmp_path / "vit.pt"
    pretrain.expert._ensure_expert(vit, world, 0, "cpu", settings, donor)
    stamp = vit.stat().st_mtime_ns
    pretrain.expert._ensure_expert(vit, world, 0, "cpu", settings, donor)
    assert vit.stat().st_mtime_ns == stamp and "retraining" not in capsys.readouterr().out
    other = tmp_path / "other-donor.pt"
    pretrain.pretrain_expert(world, other, **{**KW, "epochs": 1, "seed": 1})
    pretrain.expert._ensure_expert(vit, world, 0, "cpu", settings, other)
    assert "was trained with another text tower; retraining" in capsys.readouterr().out
    summary = torch.load(vit, map_location="cpu", weights_only=True)["summary"]
    assert summary["text_tower"] == pretrain.loop.text_tower_record(other)


def test_shift_translates_and_never_flips():
    img = torch.zeros(8, 3, 16, 16)
    img[:, :, 5, 3] = 1.0  # one bright pixel in the left part
    gen = torch.Generator().manual_seed(0)
    shifted = pretrain.images._shift(img, 2, gen)
    assert shifted.shape == img.shape
    for s in shifted:
        rows, cols = torch.nonzero(s[0] == 1.0, as_tuple=True)
        assert len(rows) == 1 and abs(rows.item() - 5) <= 2 and abs(cols.item() - 3) <= 2
    assert torch.equal(pretrain.images._shift(img, 0, gen), img)


def test_presets_and_cli(world, trained, tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match="unknown preset 'huge'; valid: smoke, default"):
        pretrain.preset_settings("huge")
    with pytest.raises(ValueError, match="no expert recipe for model 'ViT-B-32'"):
        pretrain.preset_settings("smoke", "ViT-B-32")
    calls = []

    def fake(world_dir, out_path, **kw):  # the CLI only wires arguments; training is tested above
        calls.append((world_dir, out_path, kw))
        return trained[1]

    monkeypatch.setattr(pretrain.expert, "pretrain_expert", fake)
    out = tmp_path / "cli.pt"
    cli = dict(preset="smoke", seed=3, world=world, out=out, epochs=1, device="cpu")
    args = argparse.Namespace(**cli, batch_size=None, lr=None, model=None, without_words=None)
    assert pretrain.pretrain_from_cli(args) == 0
    smoke = {**pretrain.PRESETS["vrlib-tiny"]["smoke"], "model_name": "vrlib-tiny"}
    wired = {**smoke, "epochs": 1, "seed": 3, "device": "cpu", "text_tower": None}
    assert calls == [(world, out, wired)]
    printed = capsys.readouterr().out
    assert "val image->text R@1" in printed
    assert printed.splitlines()[-1] == str(out)  # `--pretrained "$(... | tail -1)"` works
    # an unknown preset: one line, exit status 2, nothing trained
    none = {"batch_size": None, "lr": None, "model": None, "without_words": None}
    bad = argparse.Namespace(**{**cli, **none, "preset": "nosuch"})
    assert pretrain.pretrain_from_cli(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'nosuch'" in err and err.count("\n") == 1
    bad = argparse.Namespace(**{**cli, **none, "without_words": "square,hexagon"})
    assert pretrain.pretrain_from_cli(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --without-words: unknown word(s) ['hexagon']; valid: the shapes")
    assert len(calls) == 1
    # the ViT expert (study 04's), with recipe overrides, into its own file by default
    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    args = argparse.Namespace(
        **{**cli, "out": None}, batch_size=128, lr=2e-3, model="vrlib-tiny-vit32",
        without_words=None,
    )  # fmt: skip
    assert pretrain.pretrain_from_cli(args) == 0
    # its recipe locks vrlib-tiny's text tower: that expert is trained first, on the same world
    # (a world of one's own: beside the checkpoint), with its own recipe
    vit = tmp_path / "experts" / "vrlib-tiny-vit32-smoke-seed3.pt"
    donor = vit.with_name("vrlib-tiny-vit32-smoke-seed3-text-vrlib-tiny.pt")
    assert calls[-2] == (world, donor, {**smoke, "seed": 3, "device": "cpu", "text_tower": None})
    assert calls[-1][1] == vit
    assert calls[-1][2] == {
        **pretrain.PRESETS["vrlib-tiny-vit32"]["smoke"], "epochs": 1, "batch_size": 128, "lr": 2e-3,
        "model_name": "vrlib-tiny-vit32", "seed": 3, "device": "cpu", "text_tower": donor,
    }  # fmt: skip
    # an expert that never saw some shapes: its own file, the shapes passed on sorted
    args = argparse.Namespace(**{**cli, **none, "out": None, "without_words": "square,cross"})
    assert pretrain.pretrain_from_cli(args) == 0
    assert calls[-1][1] == tmp_path / "experts" / "vrlib-tiny-smoke-seed3-without-cross-square.pt"
    assert calls[-1][2]["without_words"] == ("cross", "square")


def test_pretrain_command_trains_inside_the_experts_lock(world, trained, tmp_path, monkeypatch):
    """``python -m vrlib pretrain`` takes the lock ``ensure_expert`` takes, so a study started
    meanwhile waits for the checkpoint instead of training it a second time into the same file."""
    import contextlib

    held: list[Path] = []

    @contextlib.contextmanager
    def recording_lock(path, doing):
        held.append(Path(path))
        yield
        held.remove(Path(path))

    def fake(world_dir, out_path, **kw):
        assert held == [Path(out_path)]  # training runs while the lock is held
        return trained[1]

    monkeypatch.setattr(pretrain.expert, "exclusive", recording_lock)
    monkeypatch.setattr(pretrain.expert, "pretrain_expert", fake)
    out = tmp_path / "locked.pt"
    args = argparse.Namespace(
        preset="smoke", seed=0, world=world, out=out, epochs=1, device="cpu",
        batch_size=None, lr=None, model=None, without_words=None,
    )  # fmt: skip
    assert pretrain.pretrain_from_cli(args) == 0 and held == []


def test_missing_world_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="images.jsonl"):
        pretrain.pretrain_expert(tmp_path / "no-world", tmp_path / "x.pt", epochs=1, device="cpu")


def test_ensure_expert_trains_once_and_retrains_when_settings_change(world, tmp_path, monkeypatch):
    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    monkeypatch.setitem(
        pretrain.PRESETS["vrlib-tiny"], "smoke", {"epochs": 1, "batch_size": 16, "warmup_steps": 1}
    )
    monkeypatch.setattr(
        pretrain.expert, "_world", lambda preset, seed, given, overrides=None: world
    )
    path = pretrain.ensure_expert("smoke", seed=0, device="cpu")
    assert path == tmp_path / "experts" / "vrlib-tiny-smoke-seed0.pt" and path.is_file()
    calls = []
    monkeypatch.setattr(pretrain.expert, "pretrain_expert", lambda *a, **kw: calls.append(kw))
    assert pretrain.ensure_expert("smoke", seed=0) == path and calls == []  # finished: at once
    monkeypatch.setitem(
        pretrain.PRESETS["vrlib-tiny"], "smoke", {"epochs": 1, "batch_size": 8, "warmup_steps": 1}
    )
    pretrain.ensure_expert("smoke", seed=0)
    assert not path.exists() and calls[0]["batch_size"] == 8  # stale checkpoint removed, retrained
    # a world whose stills differ has an expert of its own, trained on that world
    asked = []
    monkeypatch.setattr(pretrain.expert, "_world", lambda p, s, g, o=None: asked.append(o) or world)
    other = pretrain.ensure_expert("smoke", seed=0, overrides={"motion_image_share": 0.0})
    assert other != path and other.name.startswith("vrlib-tiny-smoke-seed0-")
    assert asked == [{"motion_image_share": 0.0}] and len(calls) == 2


def test_ensure_expert_retrains_when_the_recipe_gains_hard_negatives(world, tmp_path, monkeypatch):
    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    recipe = {"epochs": 1, "batch_size": 16, "warmup_steps": 1}
    monkeypatch.setitem(pretrain.PRESETS["vrlib-tiny"], "smoke", recipe)
    monkeypatch.setattr(
        pretrain.expert, "_world", lambda preset, seed, given, overrides=None: world
    )
    path = pretrain.ensure_expert("smoke", seed=0, device="cpu")
    calls = []
    monkeypatch.setattr(pretrain.expert, "pretrain_expert", lambda *a, **kw: calls.append(kw))
    monkeypatch.setitem(pretrain.PRESETS["vrlib-tiny"], "smoke", {**recipe, "hard_negatives": 0.5})
    pretrain.ensure_expert("smoke", seed=0)
    assert not path.exists() and calls[0]["hard_negatives"] == 0.5


def test_hard_negative_training_is_deterministic(world, tmp_path):
    kw = {**KW, "epochs": 1, "hard_negatives": 0.5}
    first = pretrain.pretrain_expert(world, tmp_path / "a.pt", **kw)
    second = pretrain.pretrain_expert(world, tmp_path / "b.pt", **kw)
    a = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a) and first["val"] == second["val"]
    assert first["config"]["hard_negatives"] == 0.5
    with pytest.raises(ValueError, match="hard_negatives"):
        pretrain.PretrainConfig(epochs=1, hard_negatives=1.0)


def test_ensure_expert_retrains_when_the_world_images_change(world, tmp_path, monkeypatch):
    import shutil

    world = shutil.copytree(world, tmp_path / "world")  # this test edits an image
    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    monkeypatch.setitem(
        pretrain.PRESETS["vrlib-tiny"], "smoke", {"epochs": 1, "batch_size": 16, "warmup_steps": 1}
    )
    monkeypatch.setattr(
        pretrain.expert, "_world", lambda preset, seed, given, overrides=None: world
    )
    path = pretrain.ensure_expert("smoke", seed=0, device="cpu")
    calls = []
    monkeypatch.setattr(pretrain.expert, "pretrain_expert", lambda *a, **kw: calls.append(kw))
    first_image = sorted((world / "images").glob("*.png"))[0]
    first_image.write_bytes(first_image.read_bytes() + b"\0")  # one image changed
    pretrain.ensure_expert("smoke", seed=0)
    assert not path.exists() and len(calls) == 1


def test_training_from_scratch_is_quiet_but_a_random_model_elsewhere_warns(caplog):
    """Issue 21, section 7: the expert is random before training by design; anywhere else a random
    model is a mistake worth a warning (e.g. ``pretrained: null`` in a study)."""
    import logging

    from vrlib.encoders import load_clip

    def warned() -> bool:
        found = any("No pretrained weights loaded" in r.getMessage() for r in caplog.records)
        caplog.clear()
        return found

    with caplog.at_level(logging.WARNING):
        pretrain.loop.untrained_expert(pretrain.PretrainConfig(epochs=1))
        assert not warned()
        load_clip("vrlib-tiny", None)
        assert warned()


def test_an_expert_without_a_shape_never_trains_on_an_image_of_it(world, tmp_path, monkeypatch):
    """Study 04's Table 2: ``without_words`` leaves out every training image showing the shape
    (val keeps its own); the checkpoint records it, and an expert trained before the setting
    existed (no key in its config) still counts as one without it."""
    encoder = load_clip("vrlib-tiny", None, device="cpu", init_seed=0)
    keep = pretrain.kept_images(world, "train", ("square",))
    records = [json.loads(line) for line in (world / "annotations" / "images.jsonl").open()]
    train = [r for r in records if r["split"] == "train"]
    assert keep == [r["attributes"]["objects"][0]["shape"] != "square" for r in train]
    _, captions = pretrain.load_image_set(world, "train", encoder, without_words=("square",))
    assert len(captions) == sum(keep) == 24 and not any("square" in c for c in captions)
    red = pretrain.kept_images(world, "train", ("red",))  # a colour is left out the same way
    _, captions = pretrain.load_image_set(world, "train", encoder, without_words=("red",))
    assert 0 < sum(red) < len(train) and len(captions) == sum(red)
    assert not any(re.search(r"\bred\b", c) for c in captions)

    summary = pretrain.pretrain_expert(
        world, tmp_path / "x.pt", **{**KW, "epochs": 1}, without_words=("square",)
    )
    assert summary["train_images"] == 24 and summary["config"]["without_words"] == ["square"]
    assert summary["val"]["num_images"] == 16  # held-out metrics still on every val image
    plain = pretrain.config_record(pretrain.PretrainConfig(epochs=1))
    assert "without_words" not in plain  # older checkpoints' configs compare equal
    with pytest.raises(ValueError, match="without_words"):  # resuming under other settings
        pretrain.pretrain_expert(world, tmp_path / "x.pt", **{**KW, "epochs": 1})
    with pytest.raises(ValueError, match="sorted and distinct"):
        pretrain.PretrainConfig(epochs=1, without_words=("square", "circle"))

    # ensure_expert: an expert of its own, named for what it never saw
    monkeypatch.setenv("VRLIB_HOME", str(tmp_path))
    monkeypatch.setitem(
        pretrain.PRESETS["vrlib-tiny"], "smoke", {"epochs": 1, "batch_size": 16, "warmup_steps": 1}
    )
    monkeypatch.setattr(pretrain.expert, "_world", lambda p, s, g, o=None: world)
    calls = []
    monkeypatch.setattr(pretrain.expert, "pretrain_expert", lambda *a, **kw: calls.append(kw))
    path = pretrain.ensure_expert("smoke", seed=0, without_words=["square"])
    assert path.name == "vrlib-tiny-smoke-seed0-without-square.pt"
    assert calls[0]["without_words"] == ("square",)


def test_leaving_out_shapes_needs_attributes(world, tmp_path):
    import shutil

    world = shutil.copytree(world, tmp_path / "world")
    ann = world / "annotations" / "images.jsonl"
    rows = [json.loads(line) for line in ann.open()]
    del rows[3]["attributes"]
    ann.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"images.jsonl: image 'img_000003' has no attributes"):
        pretrain.kept_images(world, "train", ("square",))
