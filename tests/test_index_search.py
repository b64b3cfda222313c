"""Exact float16 search against brute force, nprobe tuned for a target recall, IVF-PQ rescoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrlib.index import VideoIndex
from vrlib.index.search import (
    MATVEC_MAX_QUERIES,
    AnnIndex,
    AnnParams,
    exact_topk,
    recall_at_k,
    tune_nprobe,
    tuning_set,
)


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("queries", [1, MATVEC_MAX_QUERIES + 3])  # mat-vec path, buffer path
def test_float16_exact_search_equals_brute_force_on_the_stored_rows(queries):
    emb = _unit(2_003, 32, seed=0).astype(np.float16)
    q = _unit(queries, 32, seed=1)
    scores, rows = exact_topk(q, emb, k=10, chunk=300)  # uneven last chunk
    full = q @ emb.astype(np.float32).T  # (Q, N): float32 scores of the float16 rows
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), atol=1e-6)
    assert scores.dtype == np.float32


@pytest.mark.filterwarnings("error")
def test_search_reads_a_memory_mapped_float16_file(tmp_path):
    emb = _unit(500, 16, seed=0).astype(np.float16)
    np.save(tmp_path / "e.npy", emb)
    mapped = np.load(tmp_path / "e.npy", mmap_mode="r")  # read-only, stays on disk
    q = _unit(2, 16, seed=1)
    np.testing.assert_array_equal(exact_topk(q, mapped, k=3)[1], exact_topk(q, emb, k=3)[1])


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, d)).astype(np.float32)
    x = centres[rng.integers(0, 32, n)] + 0.8 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_tuned_nprobe_is_the_smallest_that_reaches_the_target():
    x = _clustered(8_000, 32, seed=0)
    q = _clustered(100, 32, seed=1)
    truth = exact_topk(q, x, 10)[1]
    ann = AnnIndex.build(x, AnnParams(kind="flat", seed=0))
    tuned = tune_nprobe(ann, q, truth, target=0.9, full_curve=True)
    assert ann.nprobe == tuned.nprobe and tuned.recall >= 0.9

    def recall(nprobe: int) -> float:
        ann.nprobe = nprobe
        return recall_at_k(ann.search(q, 10)[1], truth)

    assert recall(tuned.nprobe) == pytest.approx(tuned.recall)
    assert tuned.nprobe == 1 or recall(tuned.nprobe - 1) < 0.9
    recalls = [r for _, r, _ in tuned.curve]
    assert [p for p, _, _ in tuned.curve][-1] == ann.index.nlist and recalls[-1] == 1.0
    assert recalls == sorted(recalls)  # more lists probed never loses a neighbour


def test_tuning_set_leaves_each_query_out_of_its_own_results():
    x = _clustered(1_000, 16, seed=0)
    q, truth, own = tuning_set(x, 20, k=5, seed=0)
    np.testing.assert_array_equal(q, x[own])
    assert not (truth == own[:, None]).any()
    full = q @ x.T
    full[np.arange(len(own)), own] = -np.inf
    np.testing.assert_array_equal(truth, np.argsort(-full, axis=1, kind="stable")[:, :5])


def test_index_records_the_tuned_nprobe_and_reloads_it(tmp_path):
    x = _clustered(5_000, 32, seed=0)
    ids = [f"v{i}" for i in range(len(x))]
    index = VideoIndex.from_arrays(x, ids, ids, {"seed": 0})
    ann = index.ann(AnnParams(kind="flat", target_recall=0.9, tune_queries=100))
    m = index.manifest["ann"]
    assert m["nprobe"] == ann.nprobe and m["recall_at_10"] >= 0.9 and m["target_recall"] == 0.9
    assert m["kind"] == "flat" and m["nlist"] == ann.index.nlist
    index.save(tmp_path / "ix")
    back = VideoIndex.load(tmp_path / "ix")
    assert back.manifest["ann"] == m and back.ann().nprobe == m["nprobe"]


def test_ivfpq_candidates_are_rescored_exactly_from_the_stored_vectors():
    x = _clustered(6_000, 32, seed=0).astype(np.float16)
    q = _clustered(30, 32, seed=1)
    ann = AnnIndex.build(x, AnnParams(kind="pq", pq_bytes=8, nprobe=16, seed=0))
    assert ann.kind == "pq" and ann.vectors is x
    scores, rows = ann.search(q, 10)
    exact = np.einsum("qd,qkd->qk", q, x[rows].astype(np.float32))
    np.testing.assert_allclose(scores, exact, atol=1e-5)  # rescored: exact inner products
    assert (np.diff(scores, axis=1) <= 0).all()
    truth = exact_topk(q, x, 10)[1]
    codes_only = AnnIndex(ann.index, ann.params, vectors=None).search(q, 10)[1]
    assert recall_at_k(rows, truth) >= recall_at_k(codes_only, truth)
    assert recall_at_k(rows, truth) >= 0.8
    with pytest.raises(ValueError, match="must divide the dimension"):
        AnnIndex.build(x, AnnParams(kind="pq", pq_bytes=7))
    with pytest.raises(ValueError, match="valid: auto, flat, pq"):
        AnnParams(kind="hnsw")


def test_float16_index_searches_like_float32(tmp_path):
    x = _unit(400, 16, seed=0)
    ids = [f"v{i}" for i in range(len(x))]
    VideoIndex.from_arrays(x, ids, ids).save(tmp_path / "ix")  # float16 by default
    half = VideoIndex.load(tmp_path / "ix")
    assert half.embeddings.dtype == np.float16
    q = _unit(3, 16, seed=1)
    got = half.search(q, k=5, method="exact")
    want = VideoIndex.from_arrays(half.embeddings.astype(np.float32), ids, ids).search(q, k=5)
    assert [[h.row for h in r] for r in got] == [[h.row for h in r] for r in want]
    assert torch.allclose(
        torch.tensor([[h.score for h in r] for r in got]),
        torch.tensor([[h.score for h in r] for r in want]),
        atol=1e-6,
    )
