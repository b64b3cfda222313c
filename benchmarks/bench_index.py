"""Benchmark search over a video index: exact chunked matmul vs faiss IVF-Flat (vs HNSW, for the choice).

Run from the repository root: ``python benchmarks/bench_index.py`` (writes the ``index`` section of
``reports/benchmarks.md``; about 5 minutes and 5 GB of memory at 1M x 512 on 2 cores;
``--small`` runs only 10k x 128).

Data: synthetic clustered embeddings, like real ones (videos form topics): ``C`` centres drawn
from a standard normal, each vector a centre plus Gaussian noise (sigma 0.5 per dimension
relative to unit-variance centres), L2-normalised; queries are fresh draws from the same mixture,
so their neighbours are found in their cluster, as a text query's videos are. Sizes:
1,000,000 x 512 (C = 2,000) and 10,000 x 128 (C = 100), 100 queries each, seed 0.

Measured per method, in this one process (torch and faiss with the same number of threads):

- build: wall time to make the searchable structure (exact: none, the matrix itself);
- memory: bytes the structure holds (exact: the float32 matrix; faiss: the serialised index,
  i.e. its vectors, inverted lists or graph);
- latency: p50 and p99 over repeated calls, for 1 query and for a batch of 100 queries;
- recall@10: mean overlap of the approximate top-10 with the exact top-10 (exact is 1 by
  definition). HNSW is measured at 10k and on the first 100k of the 1M set, since building it
  at 1M on two cores takes many minutes: that build cost is why the index uses IVF-Flat.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vrlib.index.search import AnnIndex, AnnParams, exact_topk, recall_at_k  # noqa: E402

K = 10
QUERIES = 100


def clustered(n: int, d: int, clusters: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """``(n, d)`` float32 unit vectors: a centre plus noise, generated in chunks (no float64 copy)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        block = centres[rng.integers(0, clusters, m)] + 0.5 * rng.standard_normal(
            (m, d), dtype=np.float32
        )
        out[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def index_mb(index) -> float:
    """Size of a faiss index's data (vectors, lists, graph), as serialised: what it keeps in memory."""
    import faiss

    return faiss.serialize_index(index).nbytes / 2**20


def latencies(fn, queries: np.ndarray, reps: int) -> dict[str, float]:
    """p50/p99 in ms of ``fn(1 query)`` and ``fn(100 queries)`` over ``reps`` calls each."""
    out = {}
    for label, batch in (("1", queries[:1]), ("100", queries)):
        fn(batch)  # warm-up
        times = []
        for i in range(reps if label == "1" else max(3, reps // 5)):
            q = queries[i % len(queries)][None] if label == "1" else batch
            t = time.perf_counter()
            fn(q)
            times.append((time.perf_counter() - t) * 1e3)
        out[f"p50_{label}"], out[f"p99_{label}"] = np.percentile(times, [50, 99]).tolist()
    return out


def hnsw(x: np.ndarray):
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(x)
    index.hnsw.efSearch = 64
    return index


def measure(
    name: str, x: np.ndarray, q: np.ndarray, reps: int, with_hnsw_on: int | None
) -> list[dict]:
    print(f"== {name}: exact", flush=True)
    emb = torch.from_numpy(x)
    _, truth = exact_topk(q, emb, K)
    rows = [
        {
            "set": name,
            "method": "exact (chunked matmul)",
            "build_s": 0.0,
            "memory_mb": x.nbytes / 2**20,
            "recall": 1.0,
        }
    ]
    rows[-1].update(latencies(lambda b: exact_topk(b, emb, K), q, reps))

    print(f"== {name}: ivf", flush=True)
    t = time.perf_counter()
    ann = AnnIndex.build(x, AnnParams(seed=0))
    build = time.perf_counter() - t
    nlist, nprobe = ann.index.nlist, ann.index.nprobe
    row = {"set": name, "method": f"faiss IVF-Flat nlist={nlist} nprobe={nprobe}", "build_s": build}
    row.update(memory_mb=index_mb(ann.index), recall=recall_at_k(ann.search(q, K)[1], truth))
    row.update(latencies(lambda b: ann.search(b, K), q, reps * 3))
    rows.append(row)
    ann = None  # free the copy before the next structure

    if with_hnsw_on:
        print(f"== {name}: hnsw on {with_hnsw_on}", flush=True)
        sub = x[:with_hnsw_on]
        _, sub_truth = exact_topk(q, torch.from_numpy(sub), K)
        t = time.perf_counter()
        h = hnsw(sub)
        build = time.perf_counter() - t
        row = {
            "set": f"{name} (first {with_hnsw_on:,})",
            "method": "faiss HNSW M=32 efC=40 efS=64",
            "build_s": build,
        }
        row.update(
            memory_mb=index_mb(h),
            recall=recall_at_k(h.search(q, K)[1], sub_truth),
        )
        row.update(latencies(lambda b: h.search(np.ascontiguousarray(b), K), q, reps * 3))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = "| set | method | build s | memory MB | p50 / p99 ms, 1 query | p50 / p99 ms, 100 queries | recall@10 |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['method']} | {r['build_s']:.1f} | {r['memory_mb']:.0f} | "
            f"{r['p50_1']:.2f} / {r['p99_1']:.2f} | {r['p50_100']:.1f} / {r['p99_100']:.1f} | {r['recall']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    from _common import machine_line, write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="only 10k x 128 (seconds)")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    rows = []
    x = clustered(10_000 + QUERIES, 128, 100, seed=0)
    x, q = x[:10_000], x[10_000:]  # queries: the last draws of the mixture, not in the index
    rows += measure("10k x 128", x, q, reps=50, with_hnsw_on=10_000)
    if not args.small:
        x = clustered(1_000_000 + QUERIES, 512, 2000, seed=0)
        x, q = x[:1_000_000], x[1_000_000:]
        rows += measure("1M x 512", x, q, reps=20, with_hnsw_on=100_000)
    ivf_1m = [r for r in rows if r["set"] == "1M x 512" and r["method"].startswith("faiss IVF")]
    goal = ""
    if ivf_1m:
        r = ivf_1m[0]
        met = r["p50_1"] < 100 and r["recall"] >= 0.95
        goal = (
            f"\n\nGoal (under 100 ms per query at 1M with recall@10 >= 0.95): IVF-Flat answers one "
            f"query in {r['p50_1']:.1f} ms (p50) with recall@10 {r['recall']:.3f}: "
            f"{'met' if met else 'NOT met'}."
        )
    text = (
        "## Index search: exact vs approximate (`benchmarks/bench_index.py`)\n\n"
        f"`python benchmarks/bench_index.py` on {machine_line()}, faiss {faiss.__version__}. "
        "Clustered synthetic unit vectors, 100 queries from the same mixture, k = 10. Exact search "
        "is what every number in this workbench uses; approximate search is for interactive use at "
        "scale.\n\n" + table(rows) + goal
    )
    print(text)
    write_section("index", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
