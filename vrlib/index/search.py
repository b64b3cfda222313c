"""Top-k search over an embedding matrix: exact (chunked matmul) and approximate (faiss IVF).

Why two: exact search is the reference every number in this workbench comes from, and at up to a
few hundred thousand videos it is fast enough (one pass of a matmul over the matrix). Beyond that a
query that must read 2 GB (1M x 512 float32) takes longer than a person wants to wait, so an
approximate index answers instead, and says so.

Exact search (:func:`exact_topk`)
    Scores are inner products of L2-normalised vectors (cosine). The matrix is read in chunks of
    ``chunk`` rows, each chunk's top-k is kept and merged with the running top-k, so memory is
    ``O(Q * chunk)`` whatever the index size; it runs on the embeddings' device (CPU or CUDA).
    Results are ordered by score, then by row (lower first). When several rows tie exactly at the
    k-th score, which of them make the cut is not specified (real embeddings practically never
    tie; ``vrlib.metrics`` is where ties are handled by protocol).

Approximate search (:class:`AnnIndex`): faiss ``IndexIVFFlat`` with inner product.
    Why IVF-Flat and not HNSW: build time on small machines. In ``benchmarks/bench_index.py`` on
    2 shared CPU cores (``reports/benchmarks.md``), IVF-Flat over 1M x 512 built in 71 s and
    answered one query in 23 ms (p50) with recall@10 1.000, while HNSW (M=32, efConstruction=40)
    took 98 s for only the first 100k vectors, i.e. well over 15 minutes at 1M (HNSW answers
    faster, 0.2 ms, and is the better choice where an index is built once on many cores).
    Exact search of one query over 1M x 512 took about 1 s there, hence :data:`ANN_THRESHOLD`:
    above 250k vectors exact search stops feeling interactive on such a machine.
    IVF-Flat keeps the vectors uncompressed, so the scores it returns are exact inner products;
    only *which* rows are examined is approximate (``nprobe`` of ``nlist`` lists), which is what
    recall@10 measures. ``nlist`` is about ``sqrt(N)`` rounded to a power of two (1024 at 1M),
    ``nprobe`` 1/32 of the lists (at least 8). The benchmark's clustered synthetic embeddings are
    an easy case (recall 1.000); real embeddings are less cleanly clustered, so raise ``nprobe``
    (``AnnParams(nprobe=...)``) when recall matters more than latency. Random isotropic vectors,
    with no cluster structure at all, are the worst case for any partitioning index.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_CHUNK = 65_536
ANN_THRESHOLD = 250_000  # above this many vectors, method="auto" uses the ANN index


def exact_topk(
    queries: np.ndarray | torch.Tensor,
    embeddings: np.ndarray | torch.Tensor,
    k: int,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows of ``embeddings`` by inner product with each query.

    Args:
        queries: ``(Q, d)``.
        embeddings: ``(N, d)`` (float16 is computed in float32, chunk by chunk).
        k: results per query (capped at N).
        chunk: rows of ``embeddings`` scored at once.

    Returns:
        ``scores (Q, k')`` float32 and ``rows (Q, k')`` int64, best first, ``k' = min(k, N)``.
    """
    emb = torch.as_tensor(embeddings)
    q = torch.as_tensor(queries, dtype=torch.float32, device=emb.device)
    if q.ndim != 2 or emb.ndim != 2 or q.shape[1] != emb.shape[1]:
        raise ValueError(
            f"queries {tuple(q.shape)} and embeddings {tuple(emb.shape)}: need (Q, d), (N, d)"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = emb.shape[0]
    k = min(k, n)
    best_s = torch.full((q.shape[0], 0), -math.inf, device=emb.device)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64, device=emb.device)
    for start in range(0, n, chunk):
        block = emb[start : start + chunk].to(torch.float32)  # (c, d)
        s = q @ block.T  # (Q, c)
        s, i = torch.topk(s, min(k, s.shape[1]), dim=1)
        best_s, best_i = _merge(torch.cat([best_s, s], 1), torch.cat([best_i, i + start], 1), k)
    return best_s.cpu().numpy(), best_i.cpu().numpy()


def _merge(scores: torch.Tensor, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k best of each row of candidates, ordered by score then by row index."""
    by_row = torch.argsort(rows, dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    by_score = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), rows.gather(1, by_score)


def exact_scores(
    queries: np.ndarray | torch.Tensor,
    embeddings: np.ndarray | torch.Tensor,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Every score ``(Q, N)`` float32, computed chunk by chunk (for ranks of a known target)."""
    emb = torch.as_tensor(embeddings)
    q = torch.as_tensor(queries, dtype=torch.float32, device=emb.device)
    parts = [q @ emb[s : s + chunk].to(torch.float32).T for s in range(0, emb.shape[0], chunk)]
    return torch.cat(parts, dim=1).cpu().numpy() if parts else np.zeros((len(q), 0), np.float32)


@dataclass(frozen=True)
class AnnParams:
    """IVF-Flat settings. ``nlist``/``nprobe`` None: chosen from the index size (module docstring)."""

    nlist: int | None = None
    nprobe: int | None = None
    train_size: int = 64  # training vectors per list (faiss warns below 39)
    seed: int = 0

    def resolved(self, n: int) -> tuple[int, int]:
        """``(nlist, nprobe)`` for an index of ``n`` vectors."""
        nlist = self.nlist or max(1, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))
        nlist = min(nlist, max(1, n // 39))  # every list needs training points
        nprobe = self.nprobe or max(8, nlist // 32)
        return nlist, min(nprobe, nlist)


def _faiss():
    """Import faiss; keep it off BLAS when NVIDIA's nvblas is loaded (it would crash there).

    Why: decord's wheel loads ``libnvblas`` into the process's global symbol scope, so faiss's
    ``sgemm_`` calls (k-means training, batched search) resolve to nvblas, which without a config
    file has no CPU BLAS to fall back on and segfaults. faiss's own SIMD loops give the same
    results without BLAS, somewhat slower; a process that never imported decord keeps BLAS.
    """
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("approximate search needs faiss: pip install faiss-cpu") from e
    if _nvblas_loaded():
        faiss.cvar.distance_compute_blas_threshold = 2**30
    return faiss


def _nvblas_loaded() -> bool:
    try:
        with open("/proc/self/maps") as maps:
            return "libnvblas" in maps.read()
    except OSError:  # not Linux: no decord wheel with nvblas either
        return False


class AnnIndex:
    """A faiss IVF-Flat inner-product index over ``(N, d)`` float32 rows."""

    def __init__(self, index, params: AnnParams) -> None:
        self.index = index
        self.params = params

    @classmethod
    def build(cls, embeddings: np.ndarray, params: AnnParams | None = None) -> AnnIndex:
        """Train the coarse quantiser on a seeded sample and add every row."""
        faiss = _faiss()
        params = params or AnnParams()
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, d = x.shape
        nlist, nprobe = params.resolved(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = params.seed
        sample = min(n, nlist * params.train_size)
        rows = np.sort(np.random.default_rng(params.seed).choice(n, sample, replace=False))
        index.train(x[rows])
        index.add(x)
        index.nprobe = nprobe
        return cls(index, params)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k: ``scores (Q, k)``, ``rows (Q, k)``; rows are -1 where fewer were found."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        scores, rows = self.index.search(q, min(k, len(self)))
        return scores, rows.astype(np.int64)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the faiss index (atomically: temporary file, then rename)."""
        faiss = _faiss()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, params: AnnParams) -> AnnIndex:
        index = _faiss().read_index(str(path))
        index.nprobe = params.resolved(index.ntotal)[1]
        return cls(index, params)


def recall_at_k(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (the usual ANN recall@k)."""
    k = exact_rows.shape[1]
    hits = [
        len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_rows, exact_rows, strict=True)
    ]
    return float(np.mean(hits) / k)
