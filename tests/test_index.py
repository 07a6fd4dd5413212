"""SearchIndex: exact and approximate search, persistence, folders, metadata, re-ranking, the CLI.

The model is a small deterministic fake that follows the model protocol: an image embeds as
the share of its pixels in each world colour (objects only, background left out), projected
by a fixed random matrix and normalised; a text embeds the colour words it names the same way.
Its ITM head (`match`) knows what the embedding leaves out: how much of the image is that
colour, so "a large red square" prefers the biggest red square.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from benchmarks.search import clustered_unit_vectors
from vlp import faiss_index, index_store, world
from vlp.errors import BadArgument, BadCheckpoint, BadText, Unsupported
from vlp.index import SearchIndex
from vlp.limits import MAX_RESULTS
from vlp.protocol import Capabilities, ModelBase

PALETTE = {"red": (215, 45, 45), "green": (45, 160, 70), "blue": (45, 85, 215),
           "yellow": (230, 195, 35), "purple": (135, 65, 175), "orange": (240, 130, 35)}
BACKGROUND = (235, 235, 235)


def colour_shares(image) -> np.ndarray:
    """Share of the pixels nearest to each palette colour, (6,)."""
    pixels = np.asarray(image.convert("RGB").resize((32, 32), Image.NEAREST), np.float32).reshape(-1, 3)
    centres = np.array([*PALETTE.values(), BACKGROUND], np.float32)
    nearest = np.argmin(((pixels[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, minlength=len(centres))[:len(PALETTE)] / len(pixels)


class FakeModel(ModelBase):
    capabilities = Capabilities(caption=False, answer=False, match="probability", embed=True, attention=False)

    def __init__(self, dim: int = 32, fingerprint: str = "fake0001", spec: str = "fake"):
        self.spec, self.fingerprint, self.embed_dim = spec, fingerprint, dim
        rng = np.random.default_rng(0)
        self.projection = rng.standard_normal((len(PALETTE) + 1, dim)).astype(np.float32)
        self.image_calls = 0

    def _embed(self, features: np.ndarray) -> np.ndarray:
        x = features.astype(np.float32) @ self.projection
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def embed_images(self, images: list) -> np.ndarray:
        from vlp.images import load_image

        self.image_calls += len(images)
        rows = []
        for image in images:
            shares = colour_shares(load_image(image))
            colour = shares / max(shares.sum(), 1e-6)  # which colours, not how much of them
            tiebreak = zlib.crc32(np.asarray(load_image(image)).tobytes()) % 1000 / 20_000  # same image, same value
            rows.append([*colour, tiebreak])
        return self._embed(np.array(rows).reshape(-1, len(PALETTE) + 1))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        rows = [[float(name in text.split()) for name in PALETTE] + [0.0] for text in texts]
        return self._embed(np.array(rows).reshape(-1, len(PALETTE) + 1))

    def match(self, image, text: str) -> float:
        from vlp.images import load_image

        named = [i for i, name in enumerate(PALETTE) if name in text.split()]
        return float(colour_shares(load_image(image))[named].sum()) if named else 0.0


class CosineModel(FakeModel):
    """The fake whose match score is a squashed cosine (as CLIP's is): no re-ranking by it."""

    capabilities = Capabilities(caption=False, answer=False, match="cosine", embed=True, attention=False)


def square(colour: str, side: int, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUND)
    start = (size - side) // 2
    image.paste(PALETTE[colour], (start, start, start + side, start + side))
    return image


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


def recall_at_10(index: SearchIndex, base: np.ndarray, queries: np.ndarray) -> float:
    found = 0
    for q in queries:
        exact = set(brute_force(base, q, 10)[0].tolist())
        found += len(exact & {h.id for h in index.search_embedding(q, 10)})
    return found / (10 * len(queries))


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """FAISS in one thread: k-means on a machine whose cores other jobs keep busy is ~10x
    slower with two threads waiting on each other than with one."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture
def folder(tmp_path) -> Path:
    """12 images in nested folders, two colours of each of six, plus a text file."""
    root = tmp_path / "photos"
    for i, colour in enumerate(PALETTE):
        for j, side in enumerate((20, 40)):
            sub = root / ("a" if j == 0 else "b/c")
            sub.mkdir(parents=True, exist_ok=True)
            square(colour, side).save(sub / f"{colour}{side}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def files_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- search


def test_flat_search_equals_brute_force():
    model = FakeModel(dim=32)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((500, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    index = SearchIndex(model)
    index.add_embeddings(base)
    assert index.kind == "flat"
    for q in rng.standard_normal((20, 32)).astype(np.float32):
        q /= np.linalg.norm(q)
        ids, scores = brute_force(base, q, 7)
        hits = index.search_embedding(q, 7)
        assert [h.id for h in hits] == ids.tolist()
        np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-5, atol=1e-5)
        assert [h.rank for h in hits] == list(range(1, 8))
    assert len(index.search_embedding(base[0], 10_000)) == 500  # k larger than the count works


@pytest.mark.parametrize("index_type", ["ivfpq", "hnsw"])
def test_approximate_recall_on_20k_clustered(index_type):
    base = clustered_unit_vectors(20_000, 32, clusters=200, seed=3)
    queries = clustered_unit_vectors(100, 32, clusters=200, seed=4, centres_seed=3)
    index = SearchIndex(FakeModel(dim=32), index_type)
    index.add_embeddings(base)
    assert index.kind == index_type
    assert recall_at_10(index, base, queries) >= 0.9


def test_add_before_train_stays_exact_then_trains(monkeypatch):
    monkeypatch.setattr(faiss_index, "EXACT_BELOW", 5_000)
    monkeypatch.setattr(faiss_index, "IVFPQ_MIN_TRAIN", 5_000)
    base = clustered_unit_vectors(24_000, 16, clusters=50, seed=5)
    queries = clustered_unit_vectors(50, 16, clusters=50, seed=6, centres_seed=5)
    index = SearchIndex(FakeModel(dim=16), "auto")
    index.add_embeddings(base[:4_000])
    assert index.kind == "flat"  # below the threshold: exact
    index.add_embeddings(base[4_000:6_000])
    assert index.kind == "ivfpq" and index.vectors.trained_on == 6_000  # trained on all it held
    nlist = index.vectors.params["nlist"]
    index.add_embeddings(base[6_000:])
    assert index.vectors.trained_on == 24_000 and index.vectors.params["nlist"] > nlist  # grown 4x: retrained
    assert len(index) == 24_000
    assert recall_at_10(index, base, queries) >= 0.9


def test_search_text_and_image(folder):
    index = SearchIndex.build(FakeModel(), folder, batch_size=5, progress=False)
    assert len(index) == 12 and not index.skipped
    hits = index.search_text("a blue square", k=2)
    assert {Path(h.path).name for h in hits} == {"blue20.png", "blue40.png"}
    hits = index.search_image(folder / "a" / "green20.png", k=2)
    assert {Path(h.path).name for h in hits} == {"green20.png", "green40.png"}
    assert len(index.search_text("red", k=50)) == 12


@pytest.mark.parametrize("query, message", [
    ("", "search text is empty"), ("   \n", "search text is empty"), (None, "search text must be a string"),
])
def test_empty_query_is_refused(folder, query, message):
    index = SearchIndex.build(FakeModel(), folder, progress=False)
    with pytest.raises(BadText, match=message):
        index.search_text(query)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", MAX_RESULTS + 1])
def test_bad_k_is_refused(folder, k):
    index = SearchIndex.build(FakeModel(), folder, progress=False)
    with pytest.raises(BadArgument, match="number of results must be"):
        index.search_text("red", k=k)
    with pytest.raises(BadArgument, match="number of results must be"):
        index.search_image(folder / "a" / "red20.png", k=k)


def test_k_may_exceed_the_demo_limit(folder):
    from vlp.limits import MAX_K

    index = SearchIndex.build(FakeModel(), folder, progress=False)
    index.add_embeddings(np.random.default_rng(0).standard_normal((MAX_K + 10, 32)))
    assert len(index.search_text("red", k=MAX_K + 5)) == MAX_K + 5


def test_rerank_puts_the_right_answer_first(tmp_path):
    """Embeddings see colour, not size; the fake ITM sees how much red there is. The biggest red
    square is among the candidates but not first; re-ranking must put it first."""
    model = FakeModel()
    images = [square("red", side) for side in (14, 18, 22, 26, 30, 34)] + [square("blue", 30), square("green", 30)]
    for i, image in enumerate(images):  # files: in-memory images are not kept for re-ranking
        image.save(tmp_path / f"{i}.png")
    index = SearchIndex.build(model, tmp_path, progress=False)
    biggest = str((tmp_path / "5.png").resolve())
    plain = index.search_text("a large red square", k=3)
    assert plain[0].path != biggest  # the premise: similarity alone gets it wrong
    assert biggest in {h.path for h in index.search_text("a large red square", k=len(images))}
    reranked = index.search_text("a large red square", k=3, rerank=True)
    assert reranked[0].path == biggest
    assert [h.rank for h in reranked] == [1, 2, 3]
    assert reranked[0].score >= reranked[1].score >= reranked[2].score


def test_rerank_draws_in_memory_items_again_with_image_of():
    """The same premise with in-memory images: `image_of` gives them back for re-ranking."""
    images = {f"red{side}": square("red", side) for side in (14, 18, 22, 26, 30, 34)}
    images |= {"blue30": square("blue", 30), "green30": square("green", 30)}
    index = SearchIndex.build(FakeModel(), list(images.values()), [{"name": name} for name in images],
                              progress=False, image_of=lambda meta: images[meta["name"]])
    assert index.search_text("a large red square", k=1)[0].meta != {"name": "red34"}
    reranked = index.search_text("a large red square", k=3, rerank=True)
    assert [h.meta["name"] for h in reranked] == ["red34", "red30", "red26"]


def test_rerank_without_image_of_warns_and_scores_zero():
    index = SearchIndex.build(FakeModel(), [square("red", 20), square("red", 40)], progress=False)
    plain = index.search_text("red", k=2)
    with pytest.warns(UserWarning, match="Cannot re-rank item [01]: it is not a file, and no `image_of`"):
        reranked = index.search_text("red", k=2, rerank=True)
    assert [h.score for h in reranked] == [0.0, 0.0]
    assert [h.id for h in reranked] == [h.id for h in plain]  # ties keep the similarity order


def test_rerank_needs_a_trained_matching_head(folder):
    index = SearchIndex.build(CosineModel(), folder, progress=False)
    image = folder / "a" / "red20.png"
    with pytest.raises(BadArgument, match="no trained image-text matching head"):
        index.search_text("red", rerank=True)
    with pytest.raises(BadArgument, match="no trained image-text matching head"):
        index.search_texts_for_image(image, rerank=True)
    assert len(index.search_text("red", k=3)) == 3 and len(index.search_texts_for_image(image)) == 0


def test_a_model_that_does_not_embed_is_refused():
    class CaptionOnly(FakeModel):
        capabilities = Capabilities(caption=True, answer=False, match=None, embed=False, attention=False)

    with pytest.raises(Unsupported, match="does not embed images and texts into one space"):
        SearchIndex(CaptionOnly())


def test_world_scenes_with_metadata_and_image_of():
    """What the CLI and the demo do: the caller draws the scenes and passes their JSON and
    caption as metadata, and `vlp.world.scene_image` to draw them again."""
    scenes = world.scenes("test", 12)
    images, metadata = world.scene_items(scenes)
    index = SearchIndex.build(FakeModel(), images, metadata, progress=False, image_of=world.scene_image)
    assert len(index) == 12
    assert index.items[3]["meta"] == {"scene": scenes[3].to_dict(), "caption": world.caption(scenes[3])}
    assert set(index.texts) == {world.caption(s) for s in scenes}
    captions = index.search_texts_for_image(images[3], k=len(index.texts), rerank=True)
    assert captions[0].caption is not None and len(captions) == len(index.texts)
    colour = scenes[3].objects[0].color
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a candidate that could not be drawn again would warn
        hits = index.search_text(f"a {colour} thing", k=3, rerank=True)
    assert all(world.Scene.from_dict(h.meta["scene"]) and h.caption == h.meta["caption"] for h in hits)


# ----------------------------------------------------------------------------- metadata


def test_metadata_comes_back_in_hits_and_after_loading(tmp_path):
    model = FakeModel()
    index = SearchIndex(model)
    index.add([square("red", 30), square("blue", 30)], [{"caption": "a red square", "tags": ("warm",)}, {"n": 2}],
              progress=False)
    index.add_embeddings(model.embed_images([square("green", 30)]), [{"caption": "a green square", "camera": 3}])
    assert sorted(index.texts) == ["a green square", "a red square"]
    green = index.search_text("green", k=1)[0]
    assert green.meta == {"caption": "a green square", "camera": 3}
    assert (green.caption, green.path) == ("a green square", None)
    green.meta["camera"] = 4  # a hit holds a copy: the index does not change through it
    assert index.search_text("green", k=1)[0].meta["camera"] == 3
    red = index.search_text("red", k=1)[0]
    assert red.meta == {"caption": "a red square", "tags": ["warm"]}  # as JSON gives it back
    index.save(tmp_path / "idx")
    loaded = SearchIndex.load(tmp_path / "idx", model)
    for query in ("red", "blue", "green"):
        assert loaded.search_text(query, k=3) == index.search_text(query, k=3)


@pytest.mark.parametrize("items, metadata, error, message", [
    ("two", [{}], BadArgument, "Got 2 items but 1 metadata dicts"),
    ("one", ["red"], BadArgument, "must be a dict, got str"),
    ("one", [{"when": object()}], BadArgument, "not JSON-able"),
    ("one", [{"caption": " "}], BadText, "caption in the metadata must be a non-empty string"),
    ("folder", [{}], BadArgument, "not with a folder or a file"),
])
def test_bad_metadata_is_refused_before_anything_is_added(folder, items, metadata, error, message):
    items = {"one": [square("red", 20)], "two": [square("red", 20)] * 2, "folder": folder}[items]
    index = SearchIndex(FakeModel())
    with pytest.raises(error, match=message):
        index.add(items, metadata, progress=False)
    assert len(index) == 0 and index.texts == []


# ----------------------------------------------------------------------------- folders


def test_bad_files_are_skipped_and_reported(folder):
    (folder / "a" / "fake.png").write_text("this is text, not a PNG")
    (folder / "b" / "empty.jpg").write_bytes(b"")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    index = SearchIndex(FakeModel())
    report = index.add(folder, progress=False)
    assert report.added == len(index) == 12  # the 12 good images; notes.txt is not an image file
    skipped = {Path(p).name: reason for p, reason in report.skipped}
    assert set(skipped) == {"fake.png", "empty.jpg", "gone.png"}
    assert "not a readable image" in skipped["fake.png"] and "not a readable image" in skipped["empty.jpg"]
    assert "cannot read the file" in skipped["gone.png"]
    assert index.skipped == report.skipped
    assert "skipped 3 unreadable" in str(report)


def test_adding_the_same_folder_again_adds_only_new_files(folder):
    model = FakeModel()
    index = SearchIndex.build(model, folder, progress=False)
    calls = model.image_calls
    report = index.add(folder, progress=False)
    assert (report.added, report.unchanged, len(index)) == (0, 12, 12)
    assert model.image_calls == calls  # nothing was embedded again
    square("red", 50).save(folder / "new.png")
    assert index.add(folder, progress=False).added == 1
    assert len(index) == 13
    # A file that changed is indexed again; its old entry no longer shows.
    changed = folder / "a" / "red20.png"
    square("blue", 20).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert index.add(folder, progress=False).added == 1
    assert len(index) == 13
    paths = [h.path for h in index.search_text("red", k=20)]
    assert len(paths) == len(set(paths)) == 13
    blue = {Path(h.path).name for h in index.search_text("blue", k=3)}
    assert "red20.png" in blue


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(BadArgument, match="No folder or image file"):
        SearchIndex.build(FakeModel(), tmp_path / "nope", progress=False)


# ----------------------------------------------------------------------------- persistence


def test_save_load_gives_identical_results(folder, tmp_path):
    model = FakeModel()
    index = SearchIndex.build(model, folder, progress=False)
    index.add_texts(["a red square", "a blue square", "a green square"])
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["model"] == {"spec": "fake", "fingerprint": "fake0001"}
    assert (manifest["dim"], manifest["count"], manifest["metric"]) == (32, 12, "inner_product")
    assert set(manifest["files"]) == {"images.faiss", "items.jsonl", "texts.faiss", "texts.jsonl"}
    loaded = SearchIndex.load(tmp_path / "idx", model)
    for query in ("red", "a yellow square", "purple orange"):
        assert index.search_text(query, k=5) == loaded.search_text(query, k=5)
    image = folder / "a" / "red20.png"
    assert index.search_image(image, k=4) == loaded.search_image(image, k=4)
    assert index.search_texts_for_image(image, k=2) == loaded.search_texts_for_image(image, k=2)
    assert loaded.search_texts_for_image(image, k=1)[0].caption == "a red square"
    assert loaded.add(folder, progress=False).added == 0  # it remembers what it indexed


def test_save_load_approximate_index(tmp_path):
    base = clustered_unit_vectors(12_000, 16, clusters=100, seed=7)
    model = FakeModel(dim=16)
    index = SearchIndex(model, "ivfpq")
    index.add_embeddings(base)
    index.save(tmp_path / "idx")
    loaded = SearchIndex.load(tmp_path / "idx", model)
    assert (loaded.kind, loaded.vectors.params, loaded.vectors.trained_on) == ("ivfpq", index.vectors.params, 12_000)
    for q in base[:20]:
        before, after = index.search_embedding(q, 10), loaded.search_embedding(q, 10)
        assert [h.id for h in before] == [h.id for h in after]
        np.testing.assert_allclose([h.score for h in before], [h.score for h in after], atol=1e-6)


def test_another_model_or_dimension_is_refused(folder, tmp_path):
    SearchIndex.build(FakeModel(), folder, progress=False).save(tmp_path / "idx")
    before = files_state(tmp_path / "idx")
    with pytest.raises(BadCheckpoint, match=r"built with model fake \(fingerprint fake0001\), not with fake \(fingerprint other"):
        SearchIndex.load(tmp_path / "idx", FakeModel(fingerprint="other999"))
    with pytest.raises(BadCheckpoint, match="32-dimensional embeddings .* 16-dimensional"):
        SearchIndex.load(tmp_path / "idx", FakeModel(dim=16))
    assert files_state(tmp_path / "idx") == before


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _fix_checksum(path: Path, **changes):
    """Make the manifest agree with `path` as it now is (and apply `changes` to it)."""
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][path.name] = {"bytes": path.stat().st_size, "sha256": index_store._sha256(path)}
    manifest_path.write_text(json.dumps({**manifest, **changes}))


def _truncate_and_fix_checksum(path: Path):
    """A truncated FAISS file whose manifest was updated: only FAISS's reader can tell."""
    _truncate(path)
    _fix_checksum(path)


@pytest.mark.parametrize("name, damage, message", [
    ("images.faiss", _truncate, "images.faiss does not match its checksum"),
    ("items.jsonl", _garble, "items.jsonl does not match its checksum"),
    ("texts.faiss", lambda p: p.unlink(), "texts.faiss is missing"),
    ("manifest.json", _truncate, "manifest.json is unreadable"),
    ("images.faiss", _truncate_and_fix_checksum, "is corrupt: FAISS cannot read images.faiss"),
])
def test_corrupt_index_is_refused_and_left_untouched(folder, tmp_path, name, damage, message):
    model = FakeModel()
    SearchIndex.build(model, folder, progress=False).save(tmp_path / "idx")
    damage(tmp_path / "idx" / name)
    before = files_state(tmp_path / "idx")
    with pytest.raises(BadCheckpoint, match=message):
        SearchIndex.load(tmp_path / "idx", model)
    assert files_state(tmp_path / "idx") == before


def test_a_save_cut_off_between_its_renames_is_recovered(folder, tmp_path):
    model = FakeModel()
    SearchIndex.build(model, folder, progress=False).save(tmp_path / "idx")
    (tmp_path / "idx").rename(tmp_path / ".idx.old-cut")  # the old version moved aside, the new one not yet in
    assert SearchIndex.read_manifest(tmp_path / "idx")["count"] == 12
    assert len(SearchIndex.load(tmp_path / "idx", model)) == 12


def test_a_version_1_index_still_loads(folder, tmp_path):
    """Version 1 kept scene and caption beside path and id; version 2 keeps them under "meta"."""
    model = FakeModel()
    images, metadata = world.scene_items(world.scenes("test", 3))
    index = SearchIndex.build(model, images, metadata, progress=False)
    index.add(folder / "a" / "red20.png", progress=False)
    index.save(tmp_path / "idx")
    items = tmp_path / "idx" / "items.jsonl"
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    items.write_text("".join(json.dumps({**{k: v for k, v in row.items() if k != "meta"}, **row["meta"]}) + "\n"
                             for row in rows))
    _fix_checksum(items, version=1)
    loaded = SearchIndex.load(tmp_path / "idx", model)
    assert loaded.items == index.items
    assert loaded.search_text("red", k=4) == index.search_text("red", k=4)


def test_save_is_atomic(folder, tmp_path, monkeypatch):
    model = FakeModel()
    index = SearchIndex.build(model, folder, progress=False)
    index.save(tmp_path / "idx")
    before = files_state(tmp_path / "idx")
    index.add_texts(["a red square"])

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(index_store, "_write_jsonl", fail)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx")
    assert files_state(tmp_path / "idx") == before  # the old index, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "photos"]  # no temp folder left
    monkeypatch.undo()
    index.save(tmp_path / "idx")  # replacing an index works
    assert SearchIndex.load(tmp_path / "idx", model).texts == ["a red square"]
    with pytest.raises(BadArgument, match="exists and is not a vlp search index"):
        index.save(folder)  # a folder of photos is never replaced
    assert (folder / "notes.txt").exists()


# Saves `SearchIndex.save` version after version, in processes the test kills. vlp.index
# imports torch (through vlp.images), ~2 s a process; so this one imports it once and forks a
# fresh saver for each line it reads, and the test kills that saver. Version v holds 20 + v % 7
# items, every one with meta {"version": v}, and the caption "version v". Each line is one
# os.write: print makes a write per word when Python is unbuffered (PYTHONUNBUFFERED, as in CI),
# and a kill between them left "saved 1001ended 9" for the test to wait on forever.
INDEX_SAVER = """
import os, sys
import numpy as np
from vlp.index import SearchIndex
from vlp.protocol import Capabilities, ModelBase

class Fake(ModelBase):
    capabilities = Capabilities(caption=False, answer=False, match="cosine", embed=True, attention=False)
    spec, fingerprint, embed_dim = "fake", "fake0001", 8

    def embed_texts(self, texts):
        return np.ones((len(texts), 8), np.float32)

for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            version = int(line)
            while True:
                version += 1
                index = SearchIndex(Fake(), "flat")
                rows = 20 + version % 7
                index.add_embeddings(np.random.default_rng(version).standard_normal((rows, 8)), [{"version": version}] * rows)
                index.add_texts([f"version {version}"])
                index.save(sys.argv[1])
                os.write(1, f"saved {version}\\n".encode())  # one write: a kill never tears the line
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
    os.write(1, f"pid {pid}\\n".encode())
    os.write(1, f"ended {os.waitpid(pid, 0)[1]}\\n".encode())
"""


def test_a_kill_at_any_instant_of_save_leaves_a_whole_index_and_no_leftovers(tmp_path):
    path, model = tmp_path / "idx", FakeModel(dim=8)
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    saver = subprocess.Popen([sys.executable, "-c", INDEX_SAVER, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env, text=True)
    kills, deadline = 0, time.monotonic() + 15  # bounded in count and time
    try:
        for round_ in range(1, 41):
            base = round_ * 1000  # the versions this round's saver writes: base + 1, base + 2, ...
            saver.stdin.write(f"{base}\n")
            saver.stdin.flush()
            pid, saved = None, 0
            while pid is None or saved <= base:  # lines of the last round's saver are skipped
                word, number = saver.stdout.readline().split()
                assert word != "ended", "the saver failed (its traceback is in the captured stderr)"
                pid = int(number) if word == "pid" else pid
                saved = int(number) if word == "saved" else saved
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            for line in iter(saver.stdout.readline, ""):
                if line.startswith("ended"):  # dead, its locks gone
                    break
            kills += 1
            loaded = SearchIndex.load(path, model)  # recovers an interrupted save; raises if torn
            version = loaded.items[0]["meta"]["version"]
            assert version >= saved, "an older index than one already saved"
            assert len(loaded) == 20 + version % 7 and loaded.texts == [f"version {version}"]
            assert all(item["meta"] == {"version": version} for item in loaded.items)
            assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"], "leftovers not cleaned at load"
            if time.monotonic() > deadline:
                break
    finally:
        saver.stdin.close()
        saver.kill()
        saver.wait()
    assert kills >= 10


# ----------------------------------------------------------------------------- layering


def test_the_index_knows_nothing_of_shapes_world_or_the_demo():
    code = ("import sys, vlp.index, vlp.index_store, vlp.faiss_index; "
            "print(sorted(m for m in sys.modules if m.startswith(('vlp.world', 'demo', 'gradio'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- command line


def run_cli(argv: list[str]) -> int:
    import argparse

    from vlp import index_cli

    parser = argparse.ArgumentParser()
    index_cli.add_arguments(parser, "index")
    return index_cli.main(parser.parse_args(argv), "index")


def test_cli_build_and_search(folder, tmp_path, monkeypatch, capsys):
    import vlp

    monkeypatch.setattr(vlp, "load", lambda spec="vlp-tiny", device="auto": FakeModel(spec=spec), raising=False)
    out = tmp_path / "idx"
    assert run_cli(["build", "--model", "fake", "--images", str(folder), "--out", str(out), "--no-progress"]) == 0
    assert "saved 12 items" in capsys.readouterr().out
    assert run_cli(["search", str(out), "an orange square", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].split()[0] == "1" and "orange" in lines[1] and "orange" in lines[2]
    assert run_cli(["search", str(out), "--image", str(folder / "a" / "blue20.png"), "-k", "1"]) == 0
    assert "blue" in capsys.readouterr().out.splitlines()[1]
    assert run_cli(["build", "--world", "test:6", "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    capsys.readouterr()
    assert run_cli(["search", str(tmp_path / "w"), "red", "-k", "2", "--rerank"]) == 0
    best = capsys.readouterr().out.splitlines()[1]
    assert "(scene " in best and float(best.split()[1]) > 0  # scored on the scene drawn again


@pytest.mark.parametrize("argv, message", [
    (["build", "--images", "/no/such/folder", "--out", "x"], "error: No folder at /no/such/folder."),
    (["build", "--world", "test:lots", "--out", "x"], "error: --world takes SPLIT:N"),
    (["search", "/no/such/index", "red"], "error: No search index at /no/such/index"),
    (["search", "IDX", ""], "error: The search text is empty"),
    (["search", "IDX", "red", "-k", "0"], "error: The number of results must be from 1 to 10000, got 0."),
    (["search", "IDX", "red", "--image", "x.png"], "error: Give either a text to search for or --image PATH"),
])
def test_cli_errors_are_one_line(folder, tmp_path, monkeypatch, capsys, argv, message):
    import vlp

    monkeypatch.setattr(vlp, "load", lambda spec="vlp-tiny", device="auto": FakeModel(spec=spec), raising=False)
    SearchIndex.build(FakeModel(), folder, progress=False).save(tmp_path / "idx")
    assert run_cli([a.replace("IDX", str(tmp_path / "idx")) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
