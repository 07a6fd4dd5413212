"""The demo's search gallery: the first N Shapes World test scenes (cached on disk per model), or
a folder of images, indexed once and shared by every visitor.

    gallery = Gallery(model, "world:2000")
    gallery.start()       # build in the background; the page serves meanwhile
    gallery.get()         # the SearchIndex (waits for the build)
"""
from __future__ import annotations

import os
import re
import threading
import time
import warnings
from pathlib import Path

from vlp import world
from vlp.errors import BadArgument, BadCheckpoint, VLPError
from vlp.index import SearchIndex
from vlp.index_store import MANIFEST

DEFAULT_GALLERY = "world:2000"
KINDS = {"flat": "exact (FAISS flat)", "ivfpq": "approximate (FAISS IVF-PQ + exact re-rank)",
         "hnsw": "approximate (FAISS HNSW)"}


def parse_gallery_spec(spec: str) -> tuple[int, Path | None]:
    """"world:N" → (N, None); "world" → (2000, None); a folder → (0, folder)."""
    spec = (spec or DEFAULT_GALLERY).strip()
    m = re.fullmatch(r"world(?::(\d+))?", spec)
    if m:
        n = int(m.group(1) or 2000)
        if not 1 <= n <= 1_000_000:
            raise BadArgument(f"A world gallery holds 1 to 1,000,000 scenes, got {n}.")
        return n, None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise BadArgument(f"The gallery {spec!r} is neither world:N nor a folder of images.")
    return 0, folder


def world_gallery(model, n: int = 2000, cache_dir=None, progress: bool = True) -> SearchIndex:
    """The first `n` scenes of the world test split, indexed with `model`; re-ranking draws
    them again from their metadata (`vlp.world.scene_image`).

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
            return SearchIndex.load(folder, model, image_of=world.scene_image)
        except BadCheckpoint as err:
            warnings.warn(f"Rebuilding the demo gallery: {err}", stacklevel=2)
    images, metadata = world.scene_items(world.scenes("test", n))
    index = SearchIndex.build(model, images, metadata, progress=progress, image_of=world.scene_image)
    try:
        index.save(folder)
    except (OSError, VLPError) as err:
        warnings.warn(f"Could not cache the demo gallery at {folder}: {err}", stacklevel=2)
    return index


class Gallery:
    """The shared search index of the demo, built once, on first use or in the background.

    Args:
        model: the model whose embeddings fill it.
        spec: "world:N" (the first N test scenes, cached by `world_gallery`) or a folder of images.
        cache_dir: where `world_gallery` caches it (default: the user's cache folder).
    """

    def __init__(self, model, spec: str = DEFAULT_GALLERY, cache_dir=None):
        self.model = model
        self.spec = spec
        self.cache_dir = cache_dir
        self.n_scenes, self.folder = parse_gallery_spec(spec)
        self._index: SearchIndex | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self.seconds: float | None = None  # how long the build took

    @property
    def ready(self) -> bool:
        return self._index is not None

    def get(self) -> SearchIndex:
        """The index, building it first when needed (other callers wait). A failed build is
        not retried: every search reports its sentence."""
        if self._index is not None:
            return self._index
        with self._lock:
            if self._index is None:
                if self._error:
                    raise VLPError(self._error)
                start = time.perf_counter()
                try:
                    self._index = self._build()
                except VLPError as err:
                    self._error = f"The search gallery could not be built: {err}"
                    raise VLPError(self._error) from None
                self.seconds = time.perf_counter() - start
        return self._index

    def _build(self) -> SearchIndex:
        if self.folder is not None:
            return SearchIndex.build(self.model, self.folder, progress=False)
        return world_gallery(self.model, n=self.n_scenes, cache_dir=self.cache_dir, progress=False)

    def start(self) -> threading.Thread:
        """Build the index in a background thread (the page serves meanwhile)."""
        def build():
            try:
                self.get()
            except VLPError:
                pass  # kept in self._error; searches report it
        thread = threading.Thread(target=build, name="gallery-build", daemon=True)
        thread.start()
        return thread

    def describe(self) -> str:
        """One Markdown line: what the gallery holds and how it searches, or that it is being built."""
        what = f"the first {self.n_scenes:,} Shapes World test scenes" if self.folder is None else f"the images in {self.folder}"
        if self._error:
            return self._error
        if self._index is None:
            return f"The gallery ({what}) is being built; the first search waits for it."
        index = self._index
        return (f"{len(index):,} images ({what}) and {len(index.texts):,} captions · {KINDS.get(index.kind, index.kind)} "
                f"search · model {self.model.spec} (fingerprint {self.model.fingerprint})")
