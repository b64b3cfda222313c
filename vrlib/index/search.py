"""Top-k search over an embedding matrix: exact (chunked, one pass) and approximate (faiss IVF).

Why two: exact search is the reference every number in this workbench comes from, and at up to a
few hundred thousand videos it is fast enough (one pass over the matrix). Beyond that a query that
must read 1 GB (1M x 512 float16) takes longer than a person wants to wait, so an approximate index
answers instead, and says so.

Exact search (:func:`exact_topk`)
    Scores are inner products of L2-normalised vectors (cosine). The matrix is read once, in
    chunks of rows that are views (no copy of the matrix); each chunk's top-k is merged with the
    running top-k, so memory is ``O(Q * chunk)`` whatever the index size; it runs on the
    embeddings' device (CPU or CUDA). Results are ordered by score, then by row (lower first).
    When several rows tie exactly at the k-th score, which of them make the cut is not specified
    (``vrlib.metrics`` is where ties are handled by protocol).

    Float16 is the stored default (half the bytes to read; a CPU search is bound by memory
    bandwidth). How it is scored on a CPU, chosen by measurement (``benchmarks/bench_index.py``):
    for a few queries (up to :data:`MATVEC_MAX_QUERIES`) a float16 matrix-vector product per query
    (torch accumulates in float32 and rounds the scores to float16), whose best ``k + RESCORE_MARGIN``
    rows per chunk are then rescored in float32, so the scores returned are the exact float32 inner
    products with the stored rows and the order is exact unless more than ``RESCORE_MARGIN`` rows
    lie within float16 rounding (about 5e-4) of the k-th score; for more queries a float16
    matrix-matrix product is slow on CPUs without native float16 arithmetic (50 s for 100 queries
    at 1M x 512 here, against 7 s in float32), so each chunk is converted into one reused float32
    buffer and multiplied there. Float32 embeddings (``dtype="float32"`` when saving) are scored
    as they are.

Approximate search (:class:`AnnIndex`): faiss IVF with inner product.
    Why IVF and not HNSW: build time on small machines. In ``benchmarks/bench_index.py`` on 2
    shared CPU cores, IVF-Flat over 1M x 512 built in about a minute, while HNSW (M=32,
    efConstruction=40) took 98 s for only the first 100k vectors (HNSW answers faster and is the
    better choice where an index is built once on many cores).
    ``nlist`` is about ``sqrt(N)`` rounded to a power of two (1024 at 1M). ``nprobe`` is tuned
    for a target recall@10 (:func:`tune_nprobe`, 0.95 by default, as autofaiss does): a fixed
    fraction of the lists gives recall 1.0 on clustered data but 0.1 on isotropic vectors, which
    have no cluster structure for a partitioning index to use.
    Two kinds: ``flat`` (IVF-Flat) keeps the vectors in float32, so returned scores are exact and
    only *which* rows are examined is approximate; ``pq`` (IVF-PQ, ``pq_bytes`` bytes a vector)
    is the memory plan for 10M+ vectors, where even float16 no longer fits in RAM: its scores are
    approximate, so the best ``k * RERANK_FACTOR`` candidates are rescored exactly from the stored
    vectors when they are given (:attr:`AnnIndex.vectors`, e.g. a float16 file opened with
    ``np.load(..., mmap_mode="r")``, which stays on disk). ``kind="auto"`` picks ``pq`` when the
    float16 matrix would take more than half the memory available (:func:`choose_kind`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ANN_THRESHOLD = 250_000  # above this many vectors, method="auto" uses the ANN index
MATVEC_MAX_QUERIES = 4  # float16 on CPU: up to this many queries, one mat-vec each
MATVEC_CHUNK = 262_144  # rows per mat-vec (smaller chunks measured slower: per-call overhead)
GEMM_CHUNK = 32_768  # rows per float32 buffer for batched queries (64 MB at d = 512)
RESCORE_MARGIN = 16
RERANK_FACTOR = 10  # IVF-PQ: candidates rescored per result (reads 10 k rows a query)
ANN_KINDS = ("auto", "flat", "pq")


def exact_topk(
    queries: np.ndarray | torch.Tensor,
    embeddings: np.ndarray | torch.Tensor,
    k: int,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows of ``embeddings`` by inner product with each query, in one pass.

    Args:
        queries: ``(Q, d)``.
        embeddings: ``(N, d)`` float32 or float16 (numpy, memory-mapped numpy or torch; not
            copied).
        k: results per query (capped at N).
        chunk: rows scored at once (default: :data:`MATVEC_CHUNK` or :data:`GEMM_CHUNK`).

    Returns:
        ``scores (Q, k')`` float32 and ``rows (Q, k')`` int64, best first, ``k' = min(k, N)``.
    """
    emb = _tensor(embeddings)
    q = torch.as_tensor(queries, dtype=torch.float32, device=emb.device)
    if q.ndim != 2 or emb.ndim != 2 or q.shape[1] != emb.shape[1]:
        raise ValueError(
            f"queries {tuple(q.shape)} and embeddings {tuple(emb.shape)}: need (Q, d), (N, d)"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = emb.shape[0]
    k = min(k, n)
    matvec = len(q) <= MATVEC_MAX_QUERIES
    chunk = chunk or (MATVEC_CHUNK if matvec else GEMM_CHUNK)
    half_on_cpu = emb.dtype == torch.float16 and emb.device.type == "cpu"
    buf = None
    if half_on_cpu and not matvec:
        buf = torch.empty((min(chunk, n), emb.shape[1]), dtype=torch.float32)
    best_s = torch.full((q.shape[0], 0), -math.inf, device=emb.device)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64, device=emb.device)
    for start in range(0, n, chunk):
        block = emb[start : start + chunk]  # (c, d): a view
        if half_on_cpu and matvec:
            s, i = _matvec_half_topk(block, q, k)
        else:
            if buf is not None:
                block = buf[: len(block)].copy_(block)
            s = (q.to(block.dtype) @ block.T).float()  # (Q, c)
            s, i = torch.topk(s, min(k, s.shape[1]), dim=1)
        best_s, best_i = _merge(torch.cat([best_s, s], 1), torch.cat([best_i, i + start], 1), k)
    return best_s.cpu().numpy(), best_i.cpu().numpy()


def _tensor(embeddings) -> torch.Tensor:
    """A tensor sharing the memory of ``embeddings`` (read-only arrays too: search only reads)."""
    if isinstance(embeddings, np.ndarray) and not embeddings.flags.writeable:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(embeddings)
    return torch.as_tensor(embeddings)


def _matvec_half_topk(
    block: torch.Tensor, q: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: float16 mat-vec, its best ``k + RESCORE_MARGIN`` rows rescored in float32."""
    take = min(k + RESCORE_MARGIN, len(block))
    scores, rows = [], []
    for query in q:  # (d,)
        _, cand = torch.topk(torch.mv(block, query.half()), take)  # float16 scores (c,)
        exact = block[cand].float() @ query  # (take,) float32
        s, j = torch.topk(exact, min(k, take))
        scores.append(s)
        rows.append(cand[j])
    return torch.stack(scores), torch.stack(rows)  # (Q, k), (Q, k)


def _merge(scores: torch.Tensor, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k best of each row of candidates, ordered by score then by row index."""
    by_row = torch.argsort(rows, dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    by_score = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, by_score), rows.gather(1, by_score)


def exact_scores(
    queries: np.ndarray | torch.Tensor,
    embeddings: np.ndarray | torch.Tensor,
    chunk: int = GEMM_CHUNK,
) -> np.ndarray:
    """Every score ``(Q, N)`` float32, computed chunk by chunk (for ranks of a known target)."""
    emb = torch.as_tensor(embeddings)
    q = torch.as_tensor(queries, dtype=torch.float32, device=emb.device)
    parts = [q @ emb[s : s + chunk].to(torch.float32).T for s in range(0, emb.shape[0], chunk)]
    return torch.cat(parts, dim=1).cpu().numpy() if parts else np.zeros((len(q), 0), np.float32)


def choose_kind(n: int, d: int) -> str:
    """``"pq"`` when an ``(n, d)`` float16 matrix would take over half the available memory, else ``"flat"``."""
    return "pq" if n * d * 2 > available_memory() // 2 else "flat"


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``; 16 GiB where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 * 2**30


@dataclass(frozen=True)
class AnnParams:
    """IVF settings. ``nlist`` None: about ``sqrt(N)``; ``nprobe`` None: tuned for ``target_recall``.

    Attributes:
        kind: ``"flat"`` (IVF-Flat), ``"pq"`` (IVF-PQ with ``pq_bytes`` bytes a vector) or
            ``"auto"`` (:func:`choose_kind`).
        target_recall: recall@10 that :func:`tune_nprobe` aims for.
        tune_queries: held-out queries used to tune ``nprobe``.
    """

    nlist: int | None = None
    nprobe: int | None = None
    kind: str = "auto"
    pq_bytes: int = 64
    target_recall: float = 0.95
    tune_queries: int = 200
    train_size: int = 64  # training vectors per list (faiss warns below 39)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ANN_KINDS:
            raise ValueError(f"AnnParams.kind={self.kind!r}; valid: {', '.join(ANN_KINDS)}")
        if not 0 < self.target_recall <= 1:
            raise ValueError(f"AnnParams.target_recall must be in (0, 1], got {self.target_recall}")

    def resolved_nlist(self, n: int) -> int:
        """``nlist`` for an index of ``n`` vectors: every list needs about 39 training points."""
        nlist = self.nlist or max(1, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))
        return min(nlist, max(1, n // 39))


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
    """A faiss IVF inner-product index (IVF-Flat or IVF-PQ) over ``(N, d)`` rows.

    ``vectors``: the rows themselves (any dtype, may be memory-mapped), used to rescore IVF-PQ
    candidates exactly; None searches with the compressed codes alone.
    """

    def __init__(self, index, params: AnnParams, vectors=None) -> None:
        self.index = index
        self.params = params
        self.vectors = vectors

    @property
    def kind(self) -> str:
        return "pq" if "PQ" in type(self.index).__name__ else "flat"

    @classmethod
    def build(cls, embeddings, params: AnnParams | None = None, chunk: int = 65_536) -> AnnIndex:
        """Train on a seeded sample and add every row, ``chunk`` rows at a time in float32.

        ``nprobe`` is left at 1 when ``params.nprobe`` is None: tune it with :func:`tune_nprobe`.
        """
        faiss = _faiss()
        params = params or AnnParams()
        n, d = embeddings.shape
        nlist = params.resolved_nlist(n)
        kind = choose_kind(n, d) if params.kind == "auto" else params.kind
        quantizer = faiss.IndexFlatIP(d)
        if kind == "pq":
            if d % params.pq_bytes:
                raise ValueError(f"pq_bytes={params.pq_bytes} must divide the dimension {d}")
            index = faiss.IndexIVFPQ(
                quantizer, d, nlist, params.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT
            )
        else:
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = params.seed
        sample = min(n, max(nlist * params.train_size, 256 * 39 if kind == "pq" else 0))
        rows = np.sort(np.random.default_rng(params.seed).choice(n, sample, replace=False))
        index.train(np.ascontiguousarray(embeddings[rows], dtype=np.float32))
        for start in range(0, n, chunk):
            index.add(np.ascontiguousarray(embeddings[start : start + chunk], dtype=np.float32))
        index.nprobe = min(params.nprobe or 1, nlist)
        return cls(index, params, embeddings if kind == "pq" else None)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = max(1, min(int(value), int(self.index.nlist)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k: ``scores (Q, k)``, ``rows (Q, k)``; rows are -1 where fewer were found."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self))
        if self.vectors is None or self.kind == "flat":
            scores, rows = self.index.search(q, k)
            return scores, rows.astype(np.int64)
        _, cand = self.index.search(q, min(k * RERANK_FACTOR, len(self)))  # (Q, k * R)
        return _rescore(q, cand.astype(np.int64), self.vectors, k)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the faiss index (atomically: temporary file, then rename)."""
        faiss = _faiss()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, params: AnnParams, vectors=None) -> AnnIndex:
        """Read a saved index; ``params.nprobe`` (the tuned value a manifest records) is applied."""
        ann = cls(_faiss().read_index(str(path)), params, vectors)
        if params.nprobe is not None:
            ann.nprobe = params.nprobe
        return ann


def _rescore(q: np.ndarray, cand: np.ndarray, vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of the candidate rows (-1: none found), the best ``k`` kept per query."""
    scores = np.full(cand.shape, -np.inf, np.float32)  # (Q, c)
    for i, rows in enumerate(cand):
        ok = rows >= 0
        scores[i, ok] = np.asarray(vectors[rows[ok]], np.float32) @ q[i]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, order, 1)
    return best, np.where(np.isfinite(best), np.take_along_axis(cand, order, 1), -1)


def recall_at_k(approx_rows: np.ndarray, exact_rows: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (the usual ANN recall@k)."""
    k = exact_rows.shape[1]
    hits = [
        len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_rows, exact_rows, strict=True)
    ]
    return float(np.mean(hits) / k)


@dataclass
class NprobeTuning:
    """What :func:`tune_nprobe` chose and measured: ``curve`` rows are ``(nprobe, recall, ms/query)``."""

    nprobe: int
    recall: float
    target: float
    queries: int
    curve: list[tuple[int, float, float]] = field(default_factory=list)

    def manifest(self) -> dict:
        return {"nprobe": self.nprobe, "recall_at_10": round(self.recall, 4),
                "target_recall": self.target, "tuning_queries": self.queries}  # fmt: skip


def tune_nprobe(
    ann: AnnIndex,
    queries: np.ndarray,
    exact_rows: np.ndarray,
    target: float = 0.95,
    full_curve: bool = False,
    exclude: np.ndarray | None = None,
) -> NprobeTuning:
    """The smallest ``nprobe`` whose recall@k on ``queries`` reaches ``target``; sets it on ``ann``.

    Recall only grows with ``nprobe`` (more lists, a superset of candidates), so powers of two are
    tried until one reaches the target, then the gap to the previous one is bisected. Where no
    ``nprobe`` reaches it (IVF-PQ's codes cap recall), the one with the best recall is kept.

    Args:
        ann: the index to tune.
        queries: ``(Q, d)`` held-out queries (or rows of the index, see :func:`tuning_set`).
        exact_rows: ``(Q, k)`` their exact top-k rows (:func:`exact_topk`).
        target: recall@k to reach.
        full_curve: measure every power of two up to ``nlist`` (for a report), not only up to the
            first that reaches the target.
        exclude: per query, a row to leave out of its results (its own, from :func:`tuning_set`).
    """
    k, nlist = exact_rows.shape[1], int(ann.index.nlist)
    measured: dict[int, tuple[float, float]] = {}

    def recall(nprobe: int) -> float:
        if nprobe not in measured:
            ann.nprobe = nprobe
            t = time.perf_counter()
            if exclude is None:
                rows = ann.search(queries, k)[1]
            else:
                rows = _drop(ann.search(queries, k + 1)[1], exclude, k)
            ms = (time.perf_counter() - t) * 1e3 / len(queries)
            measured[nprobe] = (recall_at_k(rows, exact_rows), ms)
        return measured[nprobe][0]

    probes = [2**i for i in range(int(math.log2(nlist)) + 1)] + [nlist]
    first = next((p for p in sorted(set(probes)) if recall(p) >= target), None)
    if full_curve:
        for p in probes:
            recall(p)
    if first is None:
        chosen = max(measured, key=lambda p: (measured[p][0], -p))
    else:
        lo, chosen = first // 2, first  # recall(lo) < target <= recall(chosen)
        while chosen - lo > 1:
            mid = (lo + chosen) // 2
            lo, chosen = (lo, mid) if recall(mid) >= target else (mid, chosen)
    ann.nprobe = chosen
    curve = [(p, r, ms) for p, (r, ms) in sorted(measured.items())]
    return NprobeTuning(chosen, measured[chosen][0], target, len(queries), curve)


def tuning_set(embeddings, n: int, k: int = 10, seed: int = 0):
    """Queries for tuning an index built on ``embeddings``, with their exact top-k, leaving each out.

    Why: an index has no held-out queries of its own. ``n`` seeded rows serve as queries, and each
    one's own row is dropped from its exact and approximate results (leave-one-out), since a row
    found as its own nearest neighbour would flatter recall.

    Returns:
        ``(queries (n', d), exact_rows (n', k), own_rows (n',))``: pass ``own_rows`` as
        ``exclude`` to :func:`tune_nprobe`.
    """
    rng = np.random.default_rng(seed)
    own = np.sort(rng.choice(len(embeddings), min(n, len(embeddings)), replace=False))
    queries = np.asarray(embeddings[own], np.float32)  # (n', d)
    _, rows = exact_topk(queries, embeddings, k + 1)
    return queries, _drop(rows, own, k), own


def _drop(rows: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``rows`` without its ``exclude`` entry, cut to ``k`` (padded with -1)."""
    out = np.full((len(rows), k), -1, np.int64)
    for i, (r, own) in enumerate(zip(rows, exclude, strict=True)):
        kept = r[r != own][:k]
        out[i, : len(kept)] = kept
    return out
