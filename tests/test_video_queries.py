"""Video -> video search on a multi-embedding (k-means) index: the rule, against brute force.

The bug: a query video was reduced to the normalised mean of its centroids and scored against
each video's best centroid, so another video could outscore the query video itself (its twin
0.729, itself 0.721). Now each of the query's embeddings is scored as a text query is (its best
match among a video's embeddings) and the scores are averaged: a video scores 1 against itself.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vrlib.index import VideoIndex


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _brute_force(index_sets: np.ndarray, query_set: np.ndarray) -> np.ndarray:
    """(N,) mean over the query's embeddings of the best match among each video's embeddings."""
    pair = np.einsum("md,nkd->mnk", query_set, index_sets)  # (m, N, k)
    return pair.max(axis=2).mean(axis=0)


def test_bug_a_video_query_scores_itself_above_a_video_near_its_centroid_mean():
    e = np.eye(3, dtype=np.float32)
    middle = _unit(e[0] + e[1])
    sets = np.stack([[e[0], e[1]], [middle, middle], [e[2], e[2]]])  # (3 videos, k=2, d=3)
    index = VideoIndex.from_arrays(sets, ["query", "near-the-mean", "other"], ["a", "b", "c"])
    hits = index.search(sets[:1], k=3)[0]  # the query video's own two centroids
    assert [h.video_id for h in hits] == ["query", "near-the-mean", "other"]
    assert hits[0].score == pytest.approx(1.0) and hits[1].score == pytest.approx(np.sqrt(0.5))
    reduced = index.search(_unit(sets[0].mean(axis=0))[None], k=1)[0]  # the old rule
    assert reduced[0].video_id == "near-the-mean"  # ... which put another video first


@pytest.mark.parametrize("k", [1, 5, 40])
def test_set_queries_rank_like_brute_force_and_each_video_finds_itself_first(k):
    rng = np.random.default_rng(0)
    sets = _unit(rng.standard_normal((40, 3, 16)))  # (N, k, d)
    index = VideoIndex.from_arrays(sets, [f"v{i}" for i in range(40)], [""] * 40)
    queries = np.concatenate([_unit(rng.standard_normal((4, 3, 16))), sets[[7, 21]]])  # (Q, m, d)
    for query, hits in zip(queries, index.search(queries, k=k), strict=True):
        expected = _brute_force(sets, query)
        order = np.argsort(-expected, kind="stable")[:k]
        assert [h.row for h in hits] == order.tolist()
        assert [h.score for h in hits] == pytest.approx(expected[order].tolist(), abs=1e-6)
    for row in (7, 21):
        first = index.search(sets[row][None], k=1)[0][0]
        assert first.row == row and first.score == pytest.approx(1.0, abs=1e-6)


def test_text_queries_keep_the_best_embedding_rule():
    rng = np.random.default_rng(1)
    sets = _unit(rng.standard_normal((30, 4, 8)))
    index = VideoIndex.from_arrays(sets, [f"v{i}" for i in range(30)], [""] * 30)
    q = _unit(rng.standard_normal((3, 8)))  # (Q, d): one embedding a query, as a text
    for query, hits in zip(q, index.search(q, k=5), strict=True):
        expected = (sets @ query).max(axis=1)  # (N,)
        assert [h.row for h in hits] == np.argsort(-expected, kind="stable")[:5].tolist()


def test_a_video_file_query_on_a_kmeans_index_scores_like_brute_force(smoke_world, tmp_path):
    """End to end: the query file is sampled, encoded and clustered as the indexed videos were."""
    from vrlib.aggregate import aggregate
    from vrlib.data.sampling import SamplingConfig
    from vrlib.features import extract_frame_features
    from vrlib.index import open_encoder
    from vrlib.index.store import list_videos

    folder = tmp_path / "videos"
    folder.mkdir()
    for path in sorted((smoke_world / "videos").glob("*.mp4"))[:4]:
        shutil.copy(path, folder / path.name)
    encoder = open_encoder("vrlib-tiny", None)
    sampling = SamplingConfig(strategy="fps", target_fps=2.0, max_frames=8)
    index = VideoIndex.build(
        folder, encoder, sampling=sampling, aggregation="kmeans",
        aggregation_options={"k": 3}, cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    assert index.embeddings.shape[1] == 3
    query = folder / "vid_000002.mp4"
    item = list_videos(folder)[query.name].item
    frames = extract_frame_features(
        type("D", (), {"videos": [item]}), encoder, sampling, cache_dir=None, progress=False
    )
    own = aggregate(frames.features, "kmeans", k=3).cpu().numpy()[0]  # (k, d)
    expected = _brute_force(index.embeddings, own)  # (N,)
    hits = index.search(query, k=4, method="exact")[0]
    assert {h.video_id: h.score for h in hits} == pytest.approx(
        dict(zip(index.video_ids, expected.tolist(), strict=True)), abs=1e-5
    )
    self_hit = next(h for h in hits if h.video_id == query.name)
    assert self_hit.score == pytest.approx(1.0, abs=1e-5)
    assert all(h.score <= self_hit.score + 1e-6 for h in hits)
