"""The demo's world gallery: the first N Shapes World test scenes, indexed once per model and cached."""
from __future__ import annotations

import warnings

import pytest
from test_index import FakeModel, _garble

from demo.gallery import world_gallery
from vlp.index import SearchIndex


def test_world_gallery_is_cached_per_model(tmp_path):
    cache = tmp_path / "cache"
    model = FakeModel()
    gallery = world_gallery(model, n=10, cache_dir=cache, progress=False)
    folder = cache / "gallery-test-10-fake0001"
    assert (folder / "manifest.json").is_file() and len(gallery) == 10
    calls = model.image_calls
    again = world_gallery(model, n=10, cache_dir=cache, progress=False)
    assert model.image_calls == calls  # loaded from the cache, not embedded again
    assert again.search_text("red", k=3) == gallery.search_text("red", k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-ranking draws the cached scenes again (`image_of`)
        assert again.search_text("red", k=3, rerank=True) == gallery.search_text("red", k=3, rerank=True)
    world_gallery(FakeModel(fingerprint="new00002"), n=10, cache_dir=cache, progress=False)
    assert (cache / "gallery-test-10-new00002").is_dir()
    _garble(folder / "images.faiss")
    with pytest.warns(UserWarning, match="Rebuilding the demo gallery"):
        rebuilt = world_gallery(model, n=10, cache_dir=cache, progress=False)
    assert model.image_calls == calls + 10 and len(rebuilt) == 10
    SearchIndex.load(folder, model)  # the cache is whole again
