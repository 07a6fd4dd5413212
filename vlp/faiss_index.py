"""Which FAISS index holds a search index's vectors, and how it grows from exact to approximate.

All indexes compare by inner product; the vectors are unit rows, so that is cosine similarity.
See `benchmarks/search.py` for the measurements behind the numbers.

- `flat`  — `IndexFlatIP`, exact: every query is compared with every vector. Below
  `EXACT_BELOW` vectors this takes a few milliseconds a query on a 2-core CPU, so `auto`
  stays exact there.
- `ivfpq` — `IVF{nlist},PQ{m},RFlat`: an inverted file (k-means cells, `nprobe` of them
  searched) over product-quantised codes finds `k * k_factor` candidates, and an exact re-rank
  over the stored full vectors (`IndexRefineFlat`) orders them. At 1M clustered vectors of
  dim 256 on a 2-core CPU it gave recall@10 0.999 at 33x the queries/s of exact search, for
  7% more memory; `auto` uses it from `EXACT_BELOW` on.
- `hnsw`  — `IndexHNSWFlat`, a navigable graph; no training. Available by name; not the `auto`
  choice: in the same run it was as fast (33x) but reached only 0.887 recall@10 with
  efSearch 64, took 2.5x as long to build (183 s against 73 s) and 27% more memory.

Adding before training: an IVF index must be trained (k-means) before vectors go in, and
training needs enough vectors. So every `GrowingIndex` starts as an exact flat index; once it
holds enough vectors for its type (`auto`: `EXACT_BELOW`; `ivfpq`: `IVFPQ_MIN_TRAIN`), it is
rebuilt as the approximate index, trained on all the vectors it holds. It is rebuilt
(retrained) again whenever it has grown 4x since the last training, so the number of cells
follows the size. The full vectors are always kept (the refine stage needs them), so a
rebuild loses nothing.
"""
from __future__ import annotations

import math

import faiss
import numpy as np

from vlp.errors import BadArgument

INDEX_TYPES = ("auto", "flat", "ivfpq", "hnsw")

EXACT_BELOW = 100_000  # auto: exact search below this many vectors, IVF-PQ + exact refine from here
IVFPQ_MIN_TRAIN = 10_000  # PQ's 256 centroids per sub-space want ~39 training points each
IVFPQ_NPROBE = 16  # cells searched per query; recall@10 0.999 at 1M vectors in benchmarks/search.py
IVFPQ_K_FACTOR = 16  # the refine stage re-scores k * 16 PQ candidates exactly
HNSW_M = 32  # graph neighbours per vector
HNSW_EF_CONSTRUCTION = 64  # candidate list while building
HNSW_EF_SEARCH = 64  # candidate list while searching
TRAIN_PER_CELL = 40  # k-means sample per IVF cell (FAISS warns below 39)
RETRAIN_GROWTH = 4  # retrain an IVF index once it holds 4x the vectors it was trained on


def check_index_type(index_type) -> str:
    if index_type not in INDEX_TYPES:
        raise BadArgument(f"Unknown index type {index_type!r}; expected one of {', '.join(INDEX_TYPES)}.")
    return index_type


def kind_for(index_type: str, n: int) -> str:
    """The FAISS index that `n` vectors of an index of `index_type` should live in."""
    kind = index_type
    if kind == "auto":
        kind = "flat" if n < EXACT_BELOW else "ivfpq"
    if kind == "ivfpq" and n < IVFPQ_MIN_TRAIN:
        return "flat"  # not enough vectors to train yet: exact until there are
    return kind


def ivfpq_parameters(n: int, dim: int) -> dict:
    """IVF-PQ sizes for about `n` vectors of `dim`: nlist a power of two near 4 * sqrt(n)
    (and at most n / 39, so k-means has ~39 points a cell), m sub-quantisers of ~4 dimensions
    (m divides dim), 8 bits each. With 8-dimensional sub-quantisers (m = dim / 8) the codes
    ranked a query's neighbours too coarsely for a k_factor of 16 to recover them (recall@10
    0.89 on 1,000-point clusters); 4 dimensions gave 0.999 at 1M vectors (benchmarks/search.py)."""
    nlist = 2 ** round(math.log2(max(4 * math.sqrt(n), 1)))
    nlist = max(1, min(nlist, 2 ** int(math.log2(max(n // 39, 1)))))
    m = max(d for d in range(1, max(dim // 4, 1) + 1) if dim % d == 0)
    return {"nlist": nlist, "m": m, "nprobe": IVFPQ_NPROBE, "k_factor": IVFPQ_K_FACTOR}


def new_faiss_index(kind: str, dim: int, n: int) -> tuple[faiss.Index, dict]:
    """An empty inner-product index of `kind` sized for about `n` vectors, and its parameters.
    `ivfpq` still needs `train`; the search parameters are already set."""
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        return index, {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
    if kind == "ivfpq":
        p = ivfpq_parameters(n, dim)
        index = faiss.index_factory(dim, f"IVF{p['nlist']},PQ{p['m']},RFlat", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.do_polysemous_training = False  # only used by Hamming-filtered search; slow to train
        ivf.nprobe = p["nprobe"]
        index.k_factor = p["k_factor"]
        return index, p
    raise BadArgument(f"Unknown FAISS index {kind!r}; expected one of {', '.join(INDEX_TYPES[1:])}.")


def train_sample(vectors: np.ndarray, nlist: int, seed: int = 0) -> np.ndarray:
    """At most TRAIN_PER_CELL vectors per IVF cell, drawn at random: enough for k-means, and
    it bounds the training time (k-means costs samples x nlist x dim per iteration)."""
    if len(vectors) <= TRAIN_PER_CELL * nlist:
        return vectors
    rows = np.random.default_rng(seed).choice(len(vectors), TRAIN_PER_CELL * nlist, replace=False)
    return vectors[np.sort(rows)]


def nearest(index: faiss.Index, query: np.ndarray, k: int) -> list[tuple[float, int]]:
    """(score, id) of the min(k, ntotal) vectors of `index` nearest to `query` (1, d), best first."""
    k = min(k, index.ntotal)
    if k == 0:
        return []
    scores, ids = index.search(query, k)
    return [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]


class GrowingIndex:
    """Unit vectors in the FAISS index their count calls for (see the module docstring).

    Attributes:
        index_type: what was asked for: "auto", "flat", "ivfpq" or "hnsw".
        kind: what the FAISS index is now: "flat", "ivfpq" or "hnsw".
        params: the FAISS index's sizes (nlist, m, nprobe, k_factor; or M, efConstruction, efSearch).
        trained_on: vectors the current IVF index was trained on (0 for the others).
        faiss: the FAISS index itself.
    """

    def __init__(self, dim: int, index_type: str = "auto"):
        self.dim = dim
        self.index_type = check_index_type(index_type)
        self.kind, self.params, self.trained_on = "flat", {}, 0
        self.faiss: faiss.Index = faiss.IndexFlatIP(dim)
        self._grow()  # `hnsw` needs no training: it is a graph from the first vector

    def __len__(self) -> int:
        return self.faiss.ntotal

    def add(self, vectors: np.ndarray) -> None:
        """Add (N, dim) float32 unit rows; their ids follow on from the last."""
        self.faiss.add(vectors)
        self._grow()

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[float, int]]:
        return nearest(self.faiss, query, k)

    def _grow(self) -> None:
        """Move the vectors to the index they should be in, training it on all of them."""
        n = self.faiss.ntotal
        target = kind_for(self.index_type, n)
        retrain = target == "ivfpq" and self.kind == "ivfpq" and n >= RETRAIN_GROWTH * self.trained_on
        if target == self.kind and not retrain:
            return
        # flat, HNSW-flat and refine-flat indexes all keep the full vectors
        vectors = self.faiss.reconstruct_n(0, n) if n else np.zeros((0, self.dim), np.float32)
        index, params = new_faiss_index(target, self.dim, n)
        if target == "ivfpq":
            index.train(train_sample(vectors, params["nlist"]))
        index.add(vectors)
        self.faiss, self.kind, self.params = index, target, params
        self.trained_on = n if target == "ivfpq" else 0

    @classmethod
    def restore(cls, index: faiss.Index, index_type: str, kind: str, params: dict, trained_on: int) -> GrowingIndex:
        """A GrowingIndex around a FAISS index read from disk, in the state it was saved in."""
        grown = cls(index.d, index_type)
        grown.faiss, grown.kind, grown.params, grown.trained_on = index, kind, params, trained_on
        return grown
