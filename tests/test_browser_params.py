"""The query browser's ``index:`` source: ``~``, checks before the notebook starts, moved weights,
and what the notebook says about a plain index (no captions, so no ground truth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from vrlib.index import IndexMismatchError, VideoIndex, open_encoder
from vrlib.report import ParamsError, check_params, run_study
from vrlib.studies.query_browser import NO_GROUND_TRUTH, BrowserSource, prepare_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory, smoke_world):
    """A saved 4-video index over smoke-world files, built "with" a vrlib-tiny checkpoint file."""
    root = tmp_path_factory.mktemp("browser-index")
    checkpoint = root / "weights" / "tiny.pt"
    checkpoint.parent.mkdir()
    encoder = open_encoder("vrlib-tiny", None)
    torch.save(encoder.model.state_dict(), checkpoint)
    paths = sorted((smoke_world / "videos").glob("*.mp4"))[:4]
    emb = np.random.default_rng(0).standard_normal((4, encoder.embed_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    manifest = {
        "model": "vrlib-tiny",
        "pretrained": str(checkpoint),
        "encoder_fingerprint": encoder.fingerprint,
    }
    index = VideoIndex.from_arrays(emb, [p.name for p in paths], paths, manifest)
    folder = index.save(root / "videos" / ".vrlib-index")
    return folder, checkpoint


def _params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "browser.yaml"
    path.write_text(text)
    return path


def test_index_tilde_is_the_home_folder(tiny_index, tmp_path, monkeypatch):
    folder, _ = tiny_index
    monkeypatch.setenv("HOME", str(folder.parents[1]))
    p = check_params("query_browser", _params(tmp_path, "index: ~/videos/.vrlib-index\n"))
    assert p.index == str(folder) and "~" not in p.index


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda tmp: tmp / "no-such-folder", "folder not found"),
        (lambda tmp: tmp, "not an index folder (no manifest.json)"),
    ],
)
def test_bug_a_bad_index_fails_before_the_notebook_starts(tmp_path, make, expected):
    path = _params(tmp_path, f"index: {make(tmp_path)}\n")
    out_root = tmp_path / "reports"
    with pytest.raises(
        ParamsError, match=r"index: .*" + expected.replace("(", r"\(").replace(")", r"\)")
    ):
        run_study("query_browser", path, out_root=out_root)
    assert not out_root.exists()  # nothing ran


def test_index_built_with_another_model_is_refused_at_the_check(tiny_index, tmp_path):
    folder, _ = tiny_index
    path = _params(tmp_path, f"index: {folder}\nencoder:\n  model: ViT-B-32\n")
    with pytest.raises(
        ParamsError, match="encoder.model: 'ViT-B-32', but the index .* 'vrlib-tiny'"
    ):
        check_params("query_browser", path)
    other = tmp_path / "vit-index"  # an index of another model, named with its own model: fine
    shutil.copytree(folder, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "model": "ViT-B-32"}))
    p = check_params(
        "query_browser", _params(tmp_path, f"index: {other}\nencoder:\n  model: ViT-B-32\n")
    )
    assert p.index_encoder(manifest)[1] == manifest["pretrained"]


def test_bug_moved_weights_are_named_at_the_check_and_encoder_pretrained_is_honoured(
    tiny_index, tmp_path
):
    folder, checkpoint = tiny_index
    moved = tmp_path / "moved" / "tiny.pt"
    moved.parent.mkdir()
    shutil.copy(checkpoint, moved)
    copy = tmp_path / "index"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["pretrained"] = str(
        tmp_path / "gone" / "tiny.pt"
    )  # where the weights were at indexing
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ParamsError, match="give their new place as encoder.pretrained"):
        check_params("query_browser", _params(tmp_path, f"index: {copy}\n"))
    p = check_params(
        "query_browser", _params(tmp_path, f"index: {copy}\nencoder:\n  pretrained: {moved}\n")
    )
    source = prepare_source(p)
    assert Path(source.encoder.source) == moved and source.index.encoder is source.encoder
    assert source.index.search("a red circle", k=2)[0][0].rank == 1
    other = tmp_path / "other.pt"  # weights of another model: refused by the fingerprint
    torch.save(open_encoder("vrlib-tiny", "random(seed=7)").model.state_dict(), other)
    p = check_params(
        "query_browser", _params(tmp_path, f"index: {copy}\nencoder:\n  pretrained: {other}\n")
    )
    with pytest.raises(IndexMismatchError):
        prepare_source(p)


def test_default_expert_keeps_the_index_weights(tiny_index, tmp_path):
    """A copy of default.yaml says ``pretrained: expert``; with ``index:`` that means the index's own."""
    folder, checkpoint = tiny_index
    text = f"index: {folder}\nencoder:\n  model: vrlib-tiny\n  pretrained: expert\n"
    p = check_params("query_browser", _params(tmp_path, text))
    assert p.index_encoder(VideoIndex.load(folder).manifest) == ("vrlib-tiny", str(checkpoint))


def test_bug_a_plain_index_says_ground_truth_needs_captions(tiny_index):
    folder, _ = tiny_index
    index = VideoIndex.load(folder)
    plain = BrowserSource(index, None).describe()
    assert NO_GROUND_TRUTH in plain and "{}" not in plain and "None" not in plain
    with_data = BrowserSource(
        index, None, object(), {"t2v": {"R@1": 10.0, "R@5": 30.0, "R@10": 50.0}}
    )
    described = with_data.describe()
    assert "R@1 10.0" in described and "R@10 50.0" in described and NO_GROUND_TRUTH not in described


@pytest.mark.slow
def test_bug_notebook_on_a_plain_index_prints_no_empty_metrics_or_none_rank(tiny_index, tmp_path):
    folder, _ = tiny_index
    path = _params(tmp_path, f"index: {folder}\ntop_k: 2\nstrip_frames: 2\nstrip_size: 16\n")
    out = run_study("query_browser", path, out_root=tmp_path / "reports", readme=False)
    cells = nbformat.read(out / "06_query_browser.ipynb", as_version=4).cells
    printed = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert "ground truth needs a dataset with captions" in printed
    assert "{}" not in printed and "rank of caption 0" not in printed and "None" not in printed
    assert not [
        o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
