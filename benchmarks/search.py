"""FAISS search at scale: exact flat search against the approximate indexes `vlp.faiss_index` builds.

    python -m vlp bench search --n 1000000 --dim 256 --queries 1000   # the goal: minutes
    python -m benchmarks.search --n 20000                             # seconds

Data: unit vectors in `--clusters` Gaussian clusters (a random unit centre plus isotropic
noise of norm about `--spread`, then normalised); the queries are drawn from the same
clusters but are not in the database. Within a cluster the noise is isotropic in all `--dim`
dimensions, the hard case for quantisation: a query's ten nearest neighbours differ from the
rest of its cluster by only a few hundredths of cosine.

Measured for each index, all in one process with FAISS's default threads:
- build s: train + add, seconds (one build each, one after the other);
- bytes/vector: `len(faiss.serialize_index(index)) / n`;
- queries/s: all queries in one `search` call (throughput, k = 10);
- ms/query: up to 100 queries one at a time (latency, what the demo sees);
- recall@10: the share of exact search's top 10 that the index also returns.
The searches take turns (flat, ivfpq, hnsw, flat, … for `--rounds` rounds; the median round
counts), so a busy machine slows them alike; the load average is printed with the table.
The approximate indexes are made by `vlp.faiss_index.new_faiss_index`, with the same parameters
that `SearchIndex` uses, so these figures are what `index_type="auto"` gets.

Measured with the first command above (2-core CPU shared with other jobs, load ~3; 5 min):
| index | parameters                            | build s | bytes/vector | queries/s | × flat | recall@10 |
| flat  | exact                                 | 1.0     | 1024         | 102       | 1.0    | 1.000     |
| ivfpq | nlist=4096 m=64 nprobe=16 k_factor=16 | 73.4    | 1100         | 3394      | 33.4   | 0.999     |
| hnsw  | M=32 efConstruction=64 efSearch=64    | 183.4   | 1296         | 3334      | 32.8   | 0.887     |
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import faiss
import numpy as np

from benchmarks.timing import interleaved_seconds, load_average, table
from vlp.errors import BadArgument, VLPError
from vlp.faiss_index import IVFPQ_MIN_TRAIN, kind_for, new_faiss_index, train_sample

INDEXES = ("flat", "ivfpq", "hnsw")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=100_000, help="database vectors (default: 100000)")
    parser.add_argument("--dim", type=int, default=256, help="dimension (default: 256)")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors (default: 1000)")
    parser.add_argument("--clusters", type=int, default=1000, help="Gaussian clusters (default: 1000)")
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm around a unit centre (default: 1.0)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query, for recall@k (default: 10)")
    parser.add_argument("--indexes", default="flat,ivfpq,hnsw",
                        help="comma-separated, from flat, ivfpq, hnsw; flat is always run (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of searches, the indexes taking turns (default: 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="FAISS threads for every index (default 0: FAISS's default, one per core); "
                             "1 is steadier on a machine that other processes keep busy")


def clustered_unit_vectors(n: int, dim: int, clusters: int = 1000, spread: float = 1.0, seed: int = 0,
                           centres_seed: int | None = None) -> np.ndarray:
    """(n, dim) float32 unit vectors: cluster centre + N(0, spread^2 / dim) noise, normalised.
    Draws with the same `centres_seed` share cluster centres; `seed` picks the points."""
    rng = np.random.default_rng(seed if centres_seed is None else centres_seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, 1])
    scale = np.float32(spread / np.sqrt(dim))
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in chunks: no float64 or full-size temporaries
        stop = min(n, start + 100_000)
        x = centres[rng.integers(0, clusters, stop - start)]
        x += rng.standard_normal((stop - start, dim), dtype=np.float32) * scale
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of `exact` (ids) that the same row of `found` holds."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k]) & set(e)) / k for f, e in zip(found, exact)]))


def measure(indexes: dict[str, faiss.Index], queries: np.ndarray, k: int, rounds: int) -> dict[str, dict]:
    """Throughput (one batch call), latency (one query at a time) and the batch's result ids of
    each index; the indexes take turns, `rounds` times, and the median round counts."""
    singles = queries[:100]

    def batch(index):
        return lambda: index.search(queries, k)

    def one_at_a_time(index):
        return lambda: [index.search(q[None], k) for q in singles]

    batch_s = interleaved_seconds({kind: batch(index) for kind, index in indexes.items()}, rounds, warmup=1)
    single_s = interleaved_seconds({kind: one_at_a_time(index) for kind, index in indexes.items()}, rounds, warmup=1)
    return {kind: {"qps": len(queries) / statistics.median(batch_s[kind]),
                   "ms": 1000 * statistics.median(single_s[kind]) / len(singles),
                   "ids": index.search(queries, k)[1]} for kind, index in indexes.items()}


def build(kind: str, base: np.ndarray) -> tuple[faiss.Index, dict, float]:
    """The index of `kind` that SearchIndex would build for `base`, its parameters, build seconds."""
    start = time.perf_counter()
    index, params = new_faiss_index(kind, base.shape[1], len(base))
    if kind == "ivfpq":
        index.train(train_sample(base, params["nlist"]))
    index.add(base)
    return index, params, time.perf_counter() - start


def run(args) -> list[dict]:
    kinds = [k.strip() for k in args.indexes.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in INDEXES]
    if unknown:
        raise BadArgument(f"Unknown index {unknown[0]!r}; choose from {', '.join(INDEXES)}.")
    kinds = ["flat"] + [k for k in kinds if k != "flat"]
    if args.threads > 0:
        faiss.omp_set_num_threads(args.threads)
    print(f"data: {args.n:,} database + {args.queries:,} query unit vectors, dim {args.dim}, "
          f"{args.clusters} clusters, spread {args.spread}; FAISS {faiss.__version__}, "
          f"{faiss.omp_get_max_threads()} threads", file=sys.stderr)
    start = time.perf_counter()
    base = clustered_unit_vectors(args.n, args.dim, args.clusters, args.spread, seed=args.seed)
    queries = clustered_unit_vectors(args.queries, args.dim, args.clusters, args.spread,
                                     seed=args.seed + 1, centres_seed=args.seed)
    print(f"generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    indexes, built = {}, {}
    for kind in kinds:
        if kind == "ivfpq" and args.n < IVFPQ_MIN_TRAIN:
            print(f"ivfpq skipped: it needs at least {IVFPQ_MIN_TRAIN:,} vectors to train", file=sys.stderr)
            continue
        print(f"building {kind} …", file=sys.stderr)
        indexes[kind], params, build_s = build(kind, base)
        built[kind] = {"params": params, "build_s": build_s, "bytes": len(faiss.serialize_index(indexes[kind]))}
    print(f"searching, {args.rounds} rounds in turns …", file=sys.stderr)
    results = measure(indexes, queries, args.k, args.rounds)
    flat = {"qps": results["flat"]["qps"], "bytes": built["flat"]["bytes"], "ids": results["flat"]["ids"]}
    rows = []
    for kind, result in results.items():
        b = built[kind]
        row = {
            "index": kind,
            "parameters": " ".join(f"{k}={v}" for k, v in b["params"].items()) or "exact",
            "build s": f"{b['build_s']:.1f}",
            "bytes/vector": f"{b['bytes'] / args.n:.0f}",
            "memory × flat": f"{b['bytes'] / flat['bytes']:.2f}",
            "queries/s": f"{result['qps']:.0f}",
            "speed × flat": f"{result['qps'] / flat['qps']:.1f}",
            "ms/query (1 at a time)": f"{result['ms']:.2f}",
            f"recall@{args.k}": f"{recall_at_k(result['ids'], flat['ids']):.3f}",
        }
        rows.append(row)
        print(f"  {row}", file=sys.stderr)
    return rows


def main(args: argparse.Namespace) -> int:
    try:
        rows = run(args)
    except VLPError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    auto = kind_for("auto", args.n)
    print(f"\nFAISS search, {args.n:,} vectors of dim {args.dim}, {args.queries:,} queries, "
          f"k={args.k} (SearchIndex auto at this size: {auto}); {load_average()}\n")
    print(table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
