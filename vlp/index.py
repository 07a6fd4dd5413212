"""Search a gallery by text or by image: model embeddings in a FAISS inner-product index.

Every image becomes one L2-normalised embedding, so the inner product is the cosine
similarity; a text query is embedded by the same model and the nearest images come back as
`Hit`s. `rerank=True` re-scores the first candidates with the model's image-text matching
head, as BLIP does: contrastive embeddings are cheap and find the neighbourhood, ITM reads
image and text together and orders it.

Items are image files (a folder, a file, paths), in-memory images or precomputed embeddings,
each with an optional metadata dict of the caller's (a "caption" key also enters the caption
index). The index knows nothing of where in-memory images came from: to re-rank them, pass
`image_of(meta) -> image | None`, which draws an item again from its metadata.

What `add` takes, checked: `vlp.index_items`. Which FAISS index holds the vectors, and how it
grows: `vlp.faiss_index`. The folder on disk: `vlp.index_store`.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from vlp.errors import BadArgument, BadImage, BadText, Unsupported
from vlp.faiss_index import GrowingIndex, nearest
from vlp.images import load_image
from vlp.index_items import check_metadata, entries
from vlp.index_store import read_folder, read_manifest, write_folder
from vlp.limits import MAX_RESULTS, check_text, whole_number
from vlp.protocol import EMBEDDER, Model

RERANK_POOL = 20  # rerank=True re-scores max(RERANK_POOL, 4 * k) candidates with ITM

ImageOf = Callable[[dict], object]  # an item's metadata -> its image again, or None


@dataclass
class Hit:
    """One search result."""

    rank: int  # 1 = best
    score: float  # what hits are ordered by: cosine similarity, or ITM probability when re-ranked
    similarity: float  # cosine similarity of the embeddings
    id: int  # the item's id in the index (caption hits: the caption's id)
    path: str | None = None  # the source image file, when the item came from a file
    caption: str | None = None  # the item's "caption" metadata (caption hits: the text itself)
    meta: dict = field(default_factory=dict)  # the metadata the item was added with


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


class SearchIndex:
    """Image embeddings of one model in FAISS, with metadata per item and the captions it knows.

    Build with `SearchIndex.build(model, items)` or `SearchIndex.load(path, model)`. The model
    must embed (`model.capabilities.embed`); re-ranking needs a trained matching head
    (`model.capabilities.itm`).

    Attributes:
        items: one dict per indexed vector: id, meta, stale (a file indexed again after it
            changed; hidden from results) and, for files, path, size and mtime_ns.
        texts: the captions of the caption index, by id.
        vectors: the FAISS index of the items and how it grows (`vlp.faiss_index.GrowingIndex`).
        skipped: (path or item, reason) of what the last `build`/`add` could not read.
    """

    read_manifest = staticmethod(read_manifest)

    def __init__(self, model: Model, index_type: str = "auto", image_of: ImageOf | None = None):
        if not model.capabilities.embed:
            raise Unsupported(f"{model.spec} does not embed images and texts into one space, so it cannot "
                              f"search; load an embedding model such as {EMBEDDER}.")
        self.model = model
        self.dim = int(model.embed_dim)
        self.image_of = image_of
        self.vectors = GrowingIndex(self.dim, index_type)
        self.items: list[dict] = []
        self.texts: list[str] = []
        self._text_index = faiss.IndexFlatIP(self.dim)
        self._sources: dict[str, int] = {}  # resolved file path -> id of its current item
        self._stale: set[int] = set()
        self.skipped: list[tuple[str, str]] = []

    @property
    def kind(self) -> str:
        """The FAISS index the vectors are in now: "flat", "ivfpq" or "hnsw"."""
        return self.vectors.kind

    def __len__(self) -> int:
        """Items that searches can return (stale entries of changed files not counted)."""
        return len(self.items) - len(self._stale)

    def __repr__(self) -> str:
        return (f"SearchIndex({len(self)} items, {len(self.texts)} captions, {self.kind}, "
                f"model {self.model.spec} {self.model.fingerprint})")

    # ------------------------------------------------------------------------- building

    @classmethod
    def build(cls, model: Model, items, metadata: list[dict] | None = None, batch_size: int = 64,
              index_type: str = "auto", progress: bool = True, image_of: ImageOf | None = None) -> SearchIndex:
        """Embed and index `items`.

        Args:
            model: the encoder.
            items: a folder (searched recursively for image files), one image file, or a list
                of images (PIL, arrays, bytes, paths).
            metadata: with a list only: one JSON-able dict per item, kept with it and returned
                as `Hit.meta`; a "caption" key also puts that caption into the caption index.
            batch_size: images embedded per model call.
            index_type: "auto", "flat", "ivfpq" or "hnsw" (see `vlp.faiss_index`).
            progress: show a tqdm progress bar and print what was skipped.
            image_of: draws an in-memory item again from its metadata, for re-ranking.
        """
        index = cls(model, index_type, image_of)
        index.add(items, metadata, batch_size=batch_size, progress=progress)
        return index

    def add(self, items, metadata: list[dict] | None = None, batch_size: int = 64,
            progress: bool = True) -> AddReport:
        """Embed and add `items` (as in `build`). Unreadable images are skipped and listed in
        the report and in `self.skipped`; files already indexed with the same size and mtime
        are left out, and a file that changed is indexed again (its old entry is hidden)."""
        if batch_size < 1:
            raise BadArgument(f"The batch size must be at least 1, got {batch_size}.")
        todo = entries(items, metadata)
        report = AddReport()
        batch: list[tuple[Image.Image, dict]] = []
        with tqdm(total=len(todo), unit="img", desc="indexing", disable=not progress) as bar:
            for position, (item, meta) in enumerate(todo):
                loaded = self._load(position, item, meta, report)
                bar.update(1)
                if loaded is not None:
                    batch.append(loaded)
                if len(batch) == batch_size:
                    report.added += self._add_batch(batch)
                    batch = []
            if batch:
                report.added += self._add_batch(batch)
        self.skipped = report.skipped
        if progress and (report.skipped or report.unchanged):
            print(report, file=sys.stderr)
        return report

    def add_embeddings(self, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        """Add precomputed image embeddings (N, dim) of this model, with optional metadata (as
        in `build`). They are normalised to unit length here."""
        vectors = self._unit_rows(vectors, len(vectors))
        self._add_rows(vectors, [{"meta": meta} for meta in check_metadata(metadata, len(vectors))])

    def add_texts(self, texts: list[str]) -> int:
        """Add captions to the caption index (for `search_texts_for_image`); texts it already
        holds are left out. Returns how many were added."""
        known = set(self.texts)
        new = []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise BadText(f"A caption must be a non-empty string; got {text!r}.")
            text = text.strip()
            if text not in known:
                known.add(text)
                new.append(text)
        for start in range(0, len(new), 256):
            chunk = new[start:start + 256]
            self._text_index.add(self._unit_rows(self.model.embed_texts(chunk), len(chunk)))
            self.texts.extend(chunk)
        return len(new)

    def _load(self, position: int, item, meta: dict, report: AddReport) -> tuple[Image.Image, dict] | None:
        """(RGB image, its item row) for one entry, or None when it is left out (noted in `report`)."""
        if not isinstance(item, Path):
            try:
                return load_image(item), {"meta": meta}
            except BadImage as err:
                report.skipped.append((f"item {position}", str(err)))
                return None
        try:
            stat = item.stat()
            key = str(item.resolve())
        except OSError as err:
            report.skipped.append((str(item), f"cannot read the file ({err.strerror or err})."))
            return None
        known = self.items[self._sources[key]] if key in self._sources else {}
        if (known.get("size"), known.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
            report.unchanged += 1
            return None
        try:
            image = load_image(item)
        except BadImage as err:
            report.skipped.append((str(item), str(err)))
            return None
        return image, {"path": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "meta": meta}

    def _add_batch(self, batch: list[tuple[Image.Image, dict]]) -> int:
        images = [image for image, _ in batch]
        self._add_rows(self._unit_rows(self.model.embed_images(images), len(images)), [row for _, row in batch])
        return len(batch)

    def _add_rows(self, vectors: np.ndarray, rows: list[dict]) -> None:
        """Index unit `vectors` with their item rows; their captions go into the caption index."""
        self.vectors.add(vectors)
        for row in rows:
            row["id"], row["stale"] = len(self.items), False
            path = row.get("path")
            if path is not None:
                old = self._sources.get(path)
                if old is not None:  # the file changed since it was indexed: hide the old entry
                    self.items[old]["stale"] = True
                    self._stale.add(old)
                self._sources[path] = row["id"]
            self.items.append(row)
        captions = [row["meta"]["caption"] for row in rows if row["meta"].get("caption") is not None]
        if captions:
            self.add_texts(captions)

    def _unit_rows(self, vectors, n: int) -> np.ndarray:
        """Embeddings as contiguous float32 unit rows, checked to be (n, dim)."""
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if vectors.shape != (n, self.dim):
            raise BadArgument(f"Expected embeddings of shape ({n}, {self.dim}), got {vectors.shape}.")
        faiss.normalize_L2(vectors)
        return vectors

    # ------------------------------------------------------------------------- searching

    def search_text(self, text: str, k: int = 5, rerank: bool = False) -> list[Hit]:
        """The k items nearest to `text`. With `rerank`, the first max(20, 4k) candidates are
        re-scored with the model's ITM head and ordered by that probability."""
        text = check_text(text, "search text")
        k = _check_k(k)
        if rerank:
            self._check_rerank()
        query = self._unit_rows(self.model.embed_texts([text]), 1)[0]
        if not rerank:
            return self.search_embedding(query, k)
        return self._rerank_images(self.search_embedding(query, max(RERANK_POOL, 4 * k)), text)[:k]

    def search_image(self, image, k: int = 5) -> list[Hit]:
        """The k items nearest to `image` (PIL, path, bytes or array)."""
        k = _check_k(k)
        return self.search_embedding(self._embed_image(load_image(image)), k)

    def search_embedding(self, vector: np.ndarray, k: int = 5) -> list[Hit]:
        """The k items nearest to a query embedding of this model, (dim,)."""
        k = _check_k(k)
        query = self._unit_rows(np.asarray(vector).reshape(1, -1), 1)
        hits = []
        for score, i in self.vectors.nearest(query, k + len(self._stale)):
            if i in self._stale:
                continue
            item = self.items[i]
            hits.append(Hit(rank=len(hits) + 1, score=score, similarity=score, id=i, path=item.get("path"),
                            caption=item["meta"].get("caption"), meta=dict(item["meta"])))
            if len(hits) == k:
                break
        return hits

    def search_texts_for_image(self, image, k: int = 5, rerank: bool = False) -> list[Hit]:
        """The k known captions nearest to `image` (see `add_texts`). With `rerank`, the first
        max(20, 4k) are re-scored with ITM."""
        k = _check_k(k)
        if rerank:
            self._check_rerank()
        image = load_image(image)
        pool = max(RERANK_POOL, 4 * k) if rerank else k
        found = nearest(self._text_index, self._embed_image(image).reshape(1, -1), pool)
        hits = [Hit(rank=r + 1, score=s, similarity=s, id=i, caption=self.texts[i]) for r, (s, i) in enumerate(found)]
        if rerank and hits:
            hits = _ordered(hits, self.model.match_many(image, [h.caption for h in hits]))
        return hits[:k]

    def _check_rerank(self) -> None:
        if not self.model.capabilities.itm:
            raise BadArgument(f"{self.model.spec} has no trained image-text matching head, so it cannot re-rank: "
                              "re-ranking by its squashed cosine would only repeat the cosine order.")

    def _rerank_images(self, hits: list[Hit], text: str) -> list[Hit]:
        """Re-score text->image candidates with the ITM head. A candidate whose image cannot
        be had again gets probability 0 and a warning."""
        images, scored = [], []
        for j, hit in enumerate(hits):
            try:
                images.append(self._item_image(self.items[hit.id]))
                scored.append(j)
            except BadImage as err:
                warnings.warn(f"Cannot re-rank item {hit.id}: {err}", stacklevel=3)
        probs = np.zeros(len(hits))
        if scored:
            probs[scored] = self.model.match_pairs(images, [text] * len(images))
        return _ordered(hits, probs)

    def _item_image(self, item: dict) -> Image.Image:
        """The item's image again: its file, or what `image_of` draws from its metadata."""
        if item.get("path") is not None:
            return load_image(item["path"])
        image = self.image_of(item["meta"]) if self.image_of is not None else None
        if image is None:
            raise BadImage("it is not a file, and no `image_of` draws it from its metadata.")
        return load_image(image)

    def _embed_image(self, image: Image.Image) -> np.ndarray:
        return self._unit_rows(self.model.embed_images([image]), 1)[0]

    # ------------------------------------------------------------------------- persistence

    def save(self, path) -> None:
        """Write the index as a folder (see `vlp.index_store`), replacing the index there, whole
        or not at all. A folder that exists, is not empty and is not an index is never replaced."""
        about = {
            "model": {"spec": self.model.spec, "fingerprint": self.model.fingerprint},
            "dim": self.dim,
            "index_type": self.vectors.index_type,
            "faiss_index": self.kind,
            "params": self.vectors.params,
            "trained_on": self.vectors.trained_on,
        }
        write_folder(path, self.vectors.faiss, self._text_index, self.items, self.texts, about)

    @classmethod
    def load(cls, path, model: Model, image_of: ImageOf | None = None) -> SearchIndex:
        """Read an index saved by `save`, for `model`.

        Raises:
            BadCheckpoint: one sentence, when the index was built by another model or for
                another dimension, or is missing, incomplete or corrupt. Nothing on disk changes.
        """
        stored = read_folder(path, model)
        manifest = stored.manifest
        index = cls(model, manifest["index_type"], image_of)
        index.vectors = GrowingIndex.restore(stored.images, manifest["index_type"], manifest["faiss_index"],
                                             manifest.get("params", {}), manifest.get("trained_on", 0))
        index._text_index, index.texts, index.items = stored.texts, stored.captions, stored.items
        for item in index.items:
            if item.get("stale"):
                index._stale.add(item["id"])
            elif item.get("path") is not None:
                index._sources[item["path"]] = item["id"]
        return index


# ----------------------------------------------------------------------------- helpers


def _check_k(k) -> int:
    return whole_number(k, "number of results", 1, MAX_RESULTS)


def _ordered(hits: list[Hit], probs) -> list[Hit]:
    """Hits ordered by ITM probability (ties: by similarity), re-ranked from 1."""
    probs = np.asarray(probs, dtype=np.float64)
    order = sorted(range(len(hits)), key=lambda j: (-probs[j], -hits[j].similarity))
    return [replace(hits[j], rank=r + 1, score=float(probs[j])) for r, j in enumerate(order)]
