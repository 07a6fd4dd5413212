"""Search a gallery by text or by image: model embeddings in a FAISS inner-product index.

Every image becomes one L2-normalised embedding, so the inner product is the cosine
similarity; a text query is embedded by the same model and the nearest images come back as
`Hit`s. `rerank=True` re-scores the first candidates with the model's image-text matching
head, as BLIP does: contrastive embeddings are cheap and find the neighbourhood, ITM reads
image and text together and orders it.

Which FAISS index (see `benchmarks/search.py` for the measurements behind the numbers):
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
training needs enough vectors. So every index starts as an exact flat index; once it holds
enough vectors for its type (`auto`: `EXACT_BELOW`; `ivfpq`: `IVFPQ_MIN_TRAIN`), it is rebuilt
as the approximate index, trained on all the vectors it holds. It is rebuilt (retrained) again
whenever it has grown 4x since the last training, so the number of cells follows the size.
The full vectors are always kept (the refine stage needs them), so a rebuild loses nothing.

On disk an index is a folder (see `SearchIndex.save`): `images.faiss`, `items.jsonl`,
`texts.faiss`, `texts.jsonl` and `manifest.json` with the model's spec and fingerprint and a
SHA-256 checksum of each file. No pickle anywhere.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from vlp.images import IMAGE_EXTENSIONS, load_image

FORMAT = "vlp-search-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
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
RERANK_POOL = 20  # rerank=True re-scores max(RERANK_POOL, 4 * k) candidates with ITM


@dataclass
class Hit:
    """One search result."""

    rank: int  # 1 = best
    score: float  # what hits are ordered by: cosine similarity, or ITM probability when re-ranked
    similarity: float  # cosine similarity of the embeddings
    id: int  # the item's id in the index (caption hits: the caption's id)
    path: str | None = None  # the source image file, when the item came from a file
    caption: str | None = None  # the caption, when known (scenes; caption hits: the text itself)
    scene: dict | None = None  # the world scene as JSON, when the item is a scene


@dataclass
class AddReport:
    """What one `build` or `add` did."""

    added: int = 0  # items embedded and indexed
    unchanged: int = 0  # files already indexed with the same size and mtime, left out
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path or item, why) not indexed

    def __str__(self) -> str:
        text = f"indexed {self.added} image{'s' * (self.added != 1)}"
        if self.unchanged:
            text += f", {self.unchanged} already indexed"
        if self.skipped:
            text += f", skipped {len(self.skipped)} unreadable:"
            text += "".join(f"\n  {where}: {why}" for where, why in self.skipped)
        return text


# ----------------------------------------------------------------------------- FAISS indexes


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
    raise ValueError(f"Unknown index type {kind!r}; expected one of {', '.join(INDEX_TYPES)}.")


def train_sample(vectors: np.ndarray, nlist: int, seed: int = 0) -> np.ndarray:
    """At most TRAIN_PER_CELL vectors per IVF cell, drawn at random: enough for k-means, and
    it bounds the training time (k-means costs samples x nlist x dim per iteration)."""
    if len(vectors) <= TRAIN_PER_CELL * nlist:
        return vectors
    rows = np.random.default_rng(seed).choice(len(vectors), TRAIN_PER_CELL * nlist, replace=False)
    return vectors[np.sort(rows)]


def _stored_vectors(index: faiss.Index) -> np.ndarray:
    """All vectors of a flat, HNSW-flat or refine-flat index, (ntotal, d) float32."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), np.float32)
    return index.reconstruct_n(0, index.ntotal)


# ----------------------------------------------------------------------------- the index


class SearchIndex:
    """Image embeddings of one model in FAISS, with metadata per item and the captions it knows.

    Build with `SearchIndex.build(model, items)` or `SearchIndex.load(path, model)`. The model
    follows the protocol `embed_images`, `embed_texts`, `match` (and optionally `match_many`,
    `match_pairs`), `spec`, `fingerprint`, `embed_dim`.

    Attributes:
        items: one dict per indexed vector: id, path, size, mtime_ns (files), scene, caption,
            stale (a file indexed again after it changed; hidden from results).
        texts: the captions of the caption index, by id.
        skipped: (path or item, reason) of what the last `build`/`add` could not read.
    """

    def __init__(self, model, index_type: str = "auto"):
        if index_type not in INDEX_TYPES:
            raise ValueError(f"Unknown index type {index_type!r}; expected one of {', '.join(INDEX_TYPES)}.")
        self.model = model
        self.dim = int(model.embed_dim)
        self.index_type = index_type  # what was asked for
        self.kind = "flat"  # what the FAISS index is now (see the module docstring)
        self.params: dict = {}
        self.trained_on = 0  # vectors the current approximate index was trained on
        self._index: faiss.Index = faiss.IndexFlatIP(self.dim)
        self.items: list[dict] = []
        self.texts: list[str] = []
        self._text_index = faiss.IndexFlatIP(self.dim)
        self._sources: dict[str, int] = {}  # resolved file path -> id of its current item
        self._stale: set[int] = set()
        self.skipped: list[tuple[str, str]] = []
        self._grow()  # `hnsw` needs no training: it is a graph from the first vector

    def __len__(self) -> int:
        """Items that searches can return (stale entries of changed files not counted)."""
        return len(self.items) - len(self._stale)

    def __repr__(self) -> str:
        return (f"SearchIndex({len(self)} items, {len(self.texts)} captions, {self.kind}, "
                f"model {self.model.spec} {self.model.fingerprint})")

    # ------------------------------------------------------------------------- building

    @classmethod
    def build(cls, model, items, batch_size: int = 64, index_type: str = "auto", progress: bool = True) -> SearchIndex:
        """Embed and index `items`.

        Args:
            model: the encoder (see the class docstring).
            items: a folder (searched recursively for image files), one image file, or a list
                of images (PIL, paths, arrays) or of world scenes (objects with `.to_dict()`,
                drawn with `vlp.world.render`, captioned with `vlp.world.caption`).
            batch_size: images embedded per model call.
            index_type: "auto", "flat", "ivfpq" or "hnsw" (see the module docstring).
            progress: show a tqdm progress bar and print what was skipped.
        """
        index = cls(model, index_type)
        index.add(items, batch_size=batch_size, progress=progress)
        return index

    def add(self, items, batch_size: int = 64, progress: bool = True) -> AddReport:
        """Embed and add `items` (as in `build`). Unreadable images are skipped and listed in
        the report and in `self.skipped`; files already indexed with the same size and mtime
        are left out, and a file that changed is indexed again (its old entry is hidden)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        entries = self._entries(items)
        report = AddReport()
        batch_images: list = []
        batch_meta: list[dict] = []
        captions: list[str] = []
        with tqdm(total=len(entries), unit="img", desc="indexing", disable=not progress) as bar:
            for position, entry in enumerate(entries):
                loaded = self._load_entry(position, entry, report)
                bar.update(1)
                if loaded is None:
                    continue
                image, meta = loaded
                batch_images.append(image)
                batch_meta.append(meta)
                if meta.get("caption"):
                    captions.append(meta["caption"])
                if len(batch_images) == batch_size:
                    self._add_batch(batch_images, batch_meta)
                    report.added += len(batch_images)
                    batch_images, batch_meta = [], []
            if batch_images:
                self._add_batch(batch_images, batch_meta)
                report.added += len(batch_images)
        if captions:
            self.add_texts(captions)
        self.skipped = report.skipped
        if progress and (report.skipped or report.unchanged):
            print(report, file=sys.stderr)
        return report

    def add_texts(self, texts: list[str]) -> int:
        """Add captions to the caption index (for `search_texts_for_image`); texts it already
        holds are left out. Returns how many were added."""
        known = set(self.texts)
        new = []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"A caption must be a non-empty string; got {text!r}.")
            text = text.strip()
            if text not in known:
                known.add(text)
                new.append(text)
        for start in range(0, len(new), 256):
            chunk = new[start:start + 256]
            self._text_index.add(self._embeddings(self.model.embed_texts(chunk), len(chunk)))
            self.texts.extend(chunk)
        return len(new)

    def add_embeddings(self, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        """Add precomputed image embeddings (N, dim) of this model, with optional metadata
        (keys path, scene, caption). They are normalised to unit length here."""
        vectors = self._embeddings(vectors, len(vectors))
        metadata = [{} for _ in range(len(vectors))] if metadata is None else metadata
        if len(metadata) != len(vectors):
            raise ValueError(f"Got {len(vectors)} vectors but {len(metadata)} metadata entries.")
        self._add_vectors(vectors, [dict(m) for m in metadata])

    def _entries(self, items) -> list[tuple[str, object]]:
        """`items` as a list of ("file", Path), ("scene", scene) or ("image", image)."""
        if isinstance(items, (str, os.PathLike)):
            path = Path(items).expanduser()
            if path.is_dir():
                # not is_dir() rather than is_file(): a broken link is listed, then reported as skipped
                files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
                return [("file", p) for p in files]
            if path.is_file():
                return [("file", path)]
            raise ValueError(f"No folder or image file at {path}.")
        if hasattr(items, "to_dict") or isinstance(items, (dict, Image.Image, np.ndarray, bytes)):
            items = [items]  # one scene or one in-memory image
        entries = []
        for item in items:
            if hasattr(item, "to_dict") or isinstance(item, dict):
                entries.append(("scene", item))
            elif isinstance(item, (str, os.PathLike)):
                entries.append(("file", Path(item).expanduser()))
            else:
                entries.append(("image", item))
        return entries

    def _load_entry(self, position: int, entry, report: AddReport) -> tuple[object, dict] | None:
        """(RGB image, metadata) for one entry, or None when it is skipped (noted in report)."""
        kind, item = entry
        if kind == "scene":
            world = _world()
            try:
                scene = world.Scene.from_dict(item) if isinstance(item, dict) else item
            except ValueError as err:
                report.skipped.append((f"item {position}", str(err)))
                return None
            return world.render(scene), {"scene": scene.to_dict(), "caption": world.caption(scene)}
        if kind == "image":
            try:
                return load_image(item), {}
            except ValueError as err:
                report.skipped.append((f"item {position}", str(err)))
                return None
        try:
            stat = item.stat()
            key = str(item.resolve())
        except OSError as err:
            report.skipped.append((str(item), f"cannot read the file ({err.strerror or err})."))
            return None
        meta = {"path": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        old = self._sources.get(key)
        if old is not None and (self.items[old].get("size"), self.items[old].get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
            report.unchanged += 1
            return None
        try:
            image = load_image(item)
        except ValueError as err:
            report.skipped.append((str(item), str(err)))
            return None
        return image, meta

    def _add_batch(self, images: list, metadata: list[dict]) -> None:
        self._add_vectors(self._embeddings(self.model.embed_images(images), len(images)), metadata)

    def _add_vectors(self, vectors: np.ndarray, metadata: list[dict]) -> None:
        self._index.add(vectors)
        for meta in metadata:
            meta["id"] = len(self.items)
            meta.setdefault("stale", False)
            path = meta.get("path")
            if path is not None:
                old = self._sources.get(path)
                if old is not None:  # the file changed since it was indexed: hide the old entry
                    self.items[old]["stale"] = True
                    self._stale.add(old)
                self._sources[path] = meta["id"]
            self.items.append(meta)
        self._grow()

    def _embeddings(self, vectors, n: int) -> np.ndarray:
        """Check the model's output and return it as contiguous float32 unit rows."""
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if vectors.shape != (n, self.dim):
            raise ValueError(f"Expected embeddings of shape ({n}, {self.dim}) from the model, got {vectors.shape}.")
        faiss.normalize_L2(vectors)
        return vectors

    def _target_kind(self) -> str:
        """The FAISS index this many vectors should live in (see the module docstring)."""
        n = self._index.ntotal
        wanted = self.index_type
        if wanted == "auto":
            wanted = "flat" if n < EXACT_BELOW else "ivfpq"
        if wanted == "ivfpq" and n < IVFPQ_MIN_TRAIN:
            return "flat"  # not enough vectors to train yet: exact until there are
        return wanted

    def _grow(self) -> None:
        """Move the vectors to the index they should be in, training it on all of them."""
        target = self._target_kind()
        n = self._index.ntotal
        retrain = target == "ivfpq" and self.kind == "ivfpq" and n >= RETRAIN_GROWTH * self.trained_on
        if target == self.kind and not retrain:
            return
        vectors = _stored_vectors(self._index)
        index, params = new_faiss_index(target, self.dim, n)
        if target == "ivfpq":
            index.train(train_sample(vectors, params["nlist"]))
        index.add(vectors)
        self._index, self.kind, self.params = index, target, params
        self.trained_on = n if target == "ivfpq" else 0

    # ------------------------------------------------------------------------- searching

    def search_text(self, text: str, k: int = 5, rerank: bool = False) -> list[Hit]:
        """The k items nearest to `text`. With `rerank`, the first max(20, 4k) candidates are
        re-scored with the model's ITM head and ordered by that probability."""
        text = self._check_query(text)
        k = self._check_k(k)
        query = self._embeddings(self.model.embed_texts([text]), 1)
        if not rerank:
            return self.search_embedding(query[0], k)
        candidates = self.search_embedding(query[0], max(RERANK_POOL, 4 * k))
        return self._rerank_images(candidates, text)[:k]

    def search_image(self, image, k: int = 5) -> list[Hit]:
        """The k items nearest to `image` (PIL, path or array)."""
        k = self._check_k(k)
        return self.search_embedding(self._embed_query_image(image), k)

    def search_embedding(self, vector: np.ndarray, k: int = 5) -> list[Hit]:
        """The k items nearest to a query embedding of this model, (dim,)."""
        k = self._check_k(k)
        query = self._embeddings(np.asarray(vector).reshape(1, -1), 1)
        hits = []
        for score, i in self._nearest(self._index, query, k + len(self._stale)):
            if i in self._stale:
                continue
            item = self.items[i]
            hits.append(Hit(rank=len(hits) + 1, score=score, similarity=score, id=i, path=item.get("path"),
                            caption=item.get("caption"), scene=item.get("scene")))
            if len(hits) == k:
                break
        return hits

    def search_texts_for_image(self, image, k: int = 5, rerank: bool = False) -> list[Hit]:
        """The k known captions nearest to `image` (see `add_texts`). With `rerank`, the first
        max(20, 4k) are re-scored with ITM."""
        k = self._check_k(k)
        image = load_image(image)
        query = self._embed_query_image(image).reshape(1, -1)
        pool = max(RERANK_POOL, 4 * k) if rerank else k
        hits = [Hit(rank=r + 1, score=s, similarity=s, id=i, caption=self.texts[i])
                for r, (s, i) in enumerate(self._nearest(self._text_index, query, pool))]
        if rerank and hits:
            if hasattr(self.model, "match_many"):
                probs = np.asarray(self.model.match_many(image, [h.caption for h in hits]), dtype=np.float64)
            else:
                probs = np.array([self.model.match(image, h.caption) for h in hits])
            hits = _ordered(hits, probs)
        return hits[:k]

    def _rerank_images(self, hits: list[Hit], text: str) -> list[Hit]:
        """Re-score text->image candidates with the ITM head. A candidate whose image cannot
        be drawn again (a file gone, an in-memory image) gets probability 0 and a warning."""
        images, scored = [], []
        for h in hits:
            try:
                images.append(self._item_image(self.items[h.id]))
                scored.append(h)
            except ValueError as err:
                warnings.warn(f"Cannot re-rank item {h.id}: {err}", stacklevel=3)
        probs = np.zeros(len(hits))
        if scored:
            if hasattr(self.model, "match_pairs"):
                p = np.asarray(self.model.match_pairs(images, [text] * len(images)), dtype=np.float64)
            else:
                p = np.array([self.model.match(im, text) for im in images])
            where = {h.id: j for j, h in enumerate(hits)}
            for h, prob in zip(scored, p):
                probs[where[h.id]] = prob
        return _ordered(hits, probs)

    def _item_image(self, item: dict):
        if item.get("scene") is not None:
            world = _world()
            return world.render(world.Scene.from_dict(item["scene"]))
        if item.get("path") is not None:
            return load_image(item["path"])
        raise ValueError("it was added as an in-memory image, which the index does not keep.")

    def _embed_query_image(self, image) -> np.ndarray:
        return self._embeddings(self.model.embed_images([load_image(image)]), 1)[0]

    @staticmethod
    def _nearest(index: faiss.Index, query: np.ndarray, k: int) -> list[tuple[float, int]]:
        """(score, id) of the min(k, ntotal) nearest vectors, best first."""
        k = min(k, index.ntotal)
        if k == 0:
            return []
        scores, ids = index.search(query, k)
        return [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]

    @staticmethod
    def _check_query(text) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("The search text is empty; type a few words, such as 'a red circle'.")
        return text

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a whole number of results, at least 1; got {k!r}.")
        return int(k)

    # ------------------------------------------------------------------------- persistence

    def save(self, path) -> None:
        """Write the index as a folder: images.faiss, items.jsonl, texts.faiss, texts.jsonl and
        manifest.json (format, model spec and fingerprint, dimension, metric, index type,
        counts, SHA-256 of each file).

        Atomic: everything is written into a temporary folder beside `path` first, then the old
        folder (if any) is moved aside, the new one renamed into place and the old one removed;
        if anything fails, the old index stays as it was. A folder that exists, is not empty and
        is not an index is never replaced.
        """
        path = check_save_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            faiss.write_index(self._index, str(tmp / "images.faiss"))
            faiss.write_index(self._text_index, str(tmp / "texts.faiss"))
            _write_jsonl(tmp / "items.jsonl", self.items)
            _write_jsonl(tmp / "texts.jsonl", self.texts)
            manifest = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "model": {"spec": self.model.spec, "fingerprint": self.model.fingerprint},
                "dim": self.dim,
                "metric": "inner_product",
                "index_type": self.index_type,
                "faiss_index": self.kind,
                "params": self.params,
                "trained_on": self.trained_on,
                "count": len(self.items),
                "text_count": len(self.texts),
                "files": {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(tmp.iterdir())},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            if path.exists():
                old = tmp.with_suffix(".old")  # unique, like tmp
                path.rename(old)
                try:
                    tmp.rename(path)
                except BaseException:
                    old.rename(path)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def read_manifest(path) -> dict:
        """The manifest of the index folder at `path`; ValueError (one sentence) when there is
        none or it is not one."""
        path = Path(path).expanduser()
        if not (path / MANIFEST).is_file():
            raise ValueError(f"No search index at {path} (no {MANIFEST}); build one with `python -m vlp index build`.")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"The search index at {path} is corrupt: its {MANIFEST} is unreadable ({err}).") from None
        keys = ("format", "version", "model", "dim", "index_type", "faiss_index", "count", "files")
        if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT or any(k not in manifest for k in keys)
                or manifest["index_type"] not in INDEX_TYPES or manifest["faiss_index"] not in INDEX_TYPES[1:]
                or not isinstance(manifest["model"], dict) or not isinstance(manifest["files"], dict)
                or not all(isinstance(f, dict) for f in manifest["files"].values())):
            raise ValueError(f"The search index at {path} is corrupt: its {MANIFEST} is not a vlp index manifest.")
        if manifest["version"] != FORMAT_VERSION:
            raise ValueError(f"The search index at {path} has format version {manifest['version']}; "
                             f"this vlp reads version {FORMAT_VERSION}, so rebuild it.")
        return manifest

    @classmethod
    def load(cls, path, model) -> SearchIndex:
        """Read an index saved by `save`, for `model`.

        Raises:
            ValueError: one sentence, when the index was built by another model (fingerprint)
                or for another dimension, or when a file is missing, truncated or garbled
                (checksum, JSON or FAISS read failure). Nothing on disk is changed.
        """
        path = Path(path).expanduser()
        manifest = cls.read_manifest(path)
        built = manifest["model"]
        if manifest["dim"] != model.embed_dim:
            raise ValueError(f"The search index at {path} holds {manifest['dim']}-dimensional embeddings of "
                             f"{built.get('spec')}, but {model.spec} makes {model.embed_dim}-dimensional ones; "
                             "rebuild the index with this model.")
        if built.get("fingerprint") != model.fingerprint:
            raise ValueError(f"The search index at {path} was built with model {built.get('spec')} "
                             f"(fingerprint {built.get('fingerprint')}), not with {model.spec} "
                             f"(fingerprint {model.fingerprint}); rebuild it with this model.")
        for name in ("images.faiss", "items.jsonl", "texts.faiss", "texts.jsonl"):
            expected = manifest["files"].get(name, {})
            f = path / name
            if not f.is_file():
                raise ValueError(f"The search index at {path} is incomplete: {name} is missing.")
            if f.stat().st_size != expected.get("bytes") or _sha256(f) != expected.get("sha256"):
                raise ValueError(f"The search index at {path} is corrupt: {name} does not match its checksum "
                                 "(truncated or changed); rebuild it.")
        index = cls(model, manifest["index_type"])
        images, texts = (_read_faiss(path / name) for name in ("images.faiss", "texts.faiss"))
        items, captions = (_read_jsonl(path / name) for name in ("items.jsonl", "texts.jsonl"))
        consistent = (
            images.d == texts.d == index.dim
            and images.ntotal == len(items) == manifest["count"]
            and texts.ntotal == len(captions)
            and images.metric_type == texts.metric_type == faiss.METRIC_INNER_PRODUCT
            and all(isinstance(item, dict) and item.get("id") == i for i, item in enumerate(items))
            and all(isinstance(text, str) for text in captions)
        )
        if not consistent:
            raise ValueError(f"The search index at {path} is corrupt: its files disagree on sizes; rebuild it.")
        index._index, index.kind = images, manifest["faiss_index"]
        index.params, index.trained_on = manifest.get("params", {}), manifest.get("trained_on", 0)
        index._text_index, index.texts, index.items = texts, captions, items
        for item in items:
            if item.get("stale"):
                index._stale.add(item["id"])
            elif item.get("path") is not None:
                index._sources[item["path"]] = item["id"]
        return index


# ----------------------------------------------------------------------------- helpers


def check_save_path(path) -> Path:
    """`path` as a Path if an index may be saved there: it does not exist, is an empty folder,
    or holds an index (which will be replaced). Anything else is refused, so that `save` never
    deletes a folder of photos."""
    path = Path(path).expanduser()
    if path.exists() and not (path / MANIFEST).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists and is not a vlp search index; choose another folder.")
    return path


def _ordered(hits: list[Hit], probs: np.ndarray) -> list[Hit]:
    """Hits ordered by ITM probability (ties: by similarity), re-ranked from 1."""
    order = sorted(range(len(hits)), key=lambda j: (-probs[j], -hits[j].similarity))
    return [replace(hits[j], rank=r + 1, score=float(probs[j])) for r, j in enumerate(order)]


def _world():
    return importlib.import_module("vlp.world")  # imported when scenes are used: it draws with PIL


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_jsonl(path: Path, rows: list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"The search index at {path.parent} is corrupt: {path.name} is not JSON lines; "
                         "rebuild it.") from None


def _read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        raise ValueError(f"The search index at {path.parent} is corrupt: FAISS cannot read {path.name}; "
                         "rebuild it.") from None


# ----------------------------------------------------------------------------- demo gallery


def default_gallery(model, n: int = 2000, cache_dir=None, progress: bool = True) -> SearchIndex:
    """The first `n` scenes of the world test split, indexed with `model`.

    Built once and cached in `cache_dir` (default `$XDG_CACHE_HOME/vlp`, else `~/.cache/vlp`)
    in a folder named after n and the model's fingerprint, so a changed model gets a new
    gallery. A cache that fails to load (corrupt, truncated) is rebuilt; a cache that cannot be
    written (read-only disk) only costs a warning.
    """
    if cache_dir is None:
        cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vlp"
    fingerprint = re.sub(r"[^A-Za-z0-9._-]", "_", str(model.fingerprint))
    folder = Path(cache_dir).expanduser() / f"gallery-test-{n}-{fingerprint}"
    if (folder / MANIFEST).is_file():
        try:
            return SearchIndex.load(folder, model)
        except ValueError as err:
            warnings.warn(f"Rebuilding the demo gallery: {err}", stacklevel=2)
    index = SearchIndex.build(model, _world().scenes("test", n), progress=progress)
    try:
        index.save(folder)
    except (OSError, ValueError) as err:
        warnings.warn(f"Could not cache the demo gallery at {folder}: {err}", stacklevel=2)
    return index
