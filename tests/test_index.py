"""SearchIndex: exact and approximate search, persistence, folders, re-ranking, the CLI.

The model is a small deterministic fake that follows the encoder protocol: an image embeds as
the share of its pixels in each world colour (objects only, background left out), projected
by a fixed random matrix and normalised; a text embeds the colour words it names the same way.
Its ITM head (`match`) knows what the embedding leaves out: how much of the image is that
colour, so "a large red square" prefers the biggest red square.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from benchmarks.search import clustered_unit_vectors
from vlp import index as index_module
from vlp import world
from vlp.index import SearchIndex, default_gallery

PALETTE = {"red": (215, 45, 45), "green": (45, 160, 70), "blue": (45, 85, 215),
           "yellow": (230, 195, 35), "purple": (135, 65, 175), "orange": (240, 130, 35)}
BACKGROUND = (235, 235, 235)


def colour_shares(image) -> np.ndarray:
    """Share of the pixels nearest to each palette colour, (6,)."""
    pixels = np.asarray(image.convert("RGB").resize((32, 32), Image.NEAREST), np.float32).reshape(-1, 3)
    centres = np.array([*PALETTE.values(), BACKGROUND], np.float32)
    nearest = np.argmin(((pixels[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, minlength=len(centres))[:len(PALETTE)] / len(pixels)


class FakeModel:
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
    monkeypatch.setattr(index_module, "EXACT_BELOW", 5_000)
    monkeypatch.setattr(index_module, "IVFPQ_MIN_TRAIN", 5_000)
    base = clustered_unit_vectors(24_000, 16, clusters=50, seed=5)
    queries = clustered_unit_vectors(50, 16, clusters=50, seed=6, centres_seed=5)
    index = SearchIndex(FakeModel(dim=16), "auto")
    index.add_embeddings(base[:4_000])
    assert index.kind == "flat"  # below the threshold: exact
    index.add_embeddings(base[4_000:6_000])
    assert index.kind == "ivfpq" and index.trained_on == 6_000  # trained on all it held
    nlist = index.params["nlist"]
    index.add_embeddings(base[6_000:])
    assert index.trained_on == 24_000 and index.params["nlist"] > nlist  # grown 4x: retrained
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


@pytest.mark.parametrize("query", ["", "   \n", None])
def test_empty_query_is_refused(folder, query):
    index = SearchIndex.build(FakeModel(), folder, progress=False)
    with pytest.raises(ValueError, match="search text is empty"):
        index.search_text(query)
    with pytest.raises(ValueError, match="k must be"):
        index.search_text("red", k=0)


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


def test_scenes_are_indexed_with_captions():
    scenes = world.scenes("test", 12)
    index = SearchIndex.build(FakeModel(), scenes, progress=False)
    assert len(index) == 12
    assert index.items[3]["scene"] == scenes[3].to_dict()
    assert index.items[3]["caption"] == world.caption(scenes[3])
    assert set(index.texts) == {world.caption(s) for s in scenes}
    captions = index.search_texts_for_image(world.render(scenes[3]), k=len(index.texts), rerank=True)
    assert captions[0].caption is not None and len(captions) == len(index.texts)
    colour = scenes[3].objects[0].color
    hits = index.search_text(f"a {colour} thing", k=3, rerank=True)  # re-ranking draws scenes again
    assert all(h.scene is not None for h in hits)


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
    with pytest.raises(ValueError, match="No folder or image file"):
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
    assert (loaded.kind, loaded.params, loaded.trained_on) == ("ivfpq", index.params, 12_000)
    for q in base[:20]:
        before, after = index.search_embedding(q, 10), loaded.search_embedding(q, 10)
        assert [h.id for h in before] == [h.id for h in after]
        np.testing.assert_allclose([h.score for h in before], [h.score for h in after], atol=1e-6)


def test_another_model_or_dimension_is_refused(folder, tmp_path):
    SearchIndex.build(FakeModel(), folder, progress=False).save(tmp_path / "idx")
    before = files_state(tmp_path / "idx")
    with pytest.raises(ValueError, match=r"built with model fake \(fingerprint fake0001\), not with fake \(fingerprint other"):
        SearchIndex.load(tmp_path / "idx", FakeModel(fingerprint="other999"))
    with pytest.raises(ValueError, match="32-dimensional embeddings .* 16-dimensional"):
        SearchIndex.load(tmp_path / "idx", FakeModel(dim=16))
    assert files_state(tmp_path / "idx") == before


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_and_fix_checksum(path: Path):
    """A truncated FAISS file whose manifest was updated: only FAISS's reader can tell."""
    _truncate(path)
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][path.name] = {"bytes": path.stat().st_size, "sha256": index_module._sha256(path)}
    manifest_path.write_text(json.dumps(manifest))


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
    with pytest.raises(ValueError, match=message):
        SearchIndex.load(tmp_path / "idx", model)
    assert files_state(tmp_path / "idx") == before


def test_save_is_atomic(folder, tmp_path, monkeypatch):
    model = FakeModel()
    index = SearchIndex.build(model, folder, progress=False)
    index.save(tmp_path / "idx")
    before = files_state(tmp_path / "idx")
    index.add_texts(["a red square"])

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "_write_jsonl", fail)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx")
    assert files_state(tmp_path / "idx") == before  # the old index, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "photos"]  # no temp folder left
    monkeypatch.undo()
    index.save(tmp_path / "idx")  # replacing an index works
    assert SearchIndex.load(tmp_path / "idx", model).texts == ["a red square"]
    with pytest.raises(ValueError, match="exists and is not a vlp search index"):
        index.save(folder)  # a folder of photos is never replaced
    assert (folder / "notes.txt").exists()


# ----------------------------------------------------------------------------- demo gallery


def test_default_gallery_is_cached_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    model = FakeModel()
    gallery = default_gallery(model, n=10, progress=False)
    folder = tmp_path / "xdg" / "vlp" / "gallery-test-10-fake0001"
    assert (folder / "manifest.json").is_file() and len(gallery) == 10
    calls = model.image_calls
    again = default_gallery(model, n=10, progress=False)
    assert model.image_calls == calls  # loaded from the cache, not embedded again
    assert again.search_text("red", k=3) == gallery.search_text("red", k=3)
    default_gallery(FakeModel(fingerprint="new00002"), n=10, progress=False)
    assert (tmp_path / "xdg" / "vlp" / "gallery-test-10-new00002").is_dir()
    _garble(folder / "images.faiss")
    with pytest.warns(UserWarning, match="Rebuilding the demo gallery"):
        rebuilt = default_gallery(model, n=10, progress=False)
    assert model.image_calls == calls + 10 and len(rebuilt) == 10
    SearchIndex.load(folder, model)  # the cache is whole again


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
    assert "(scene " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["build", "--images", "/no/such/folder", "--out", "x"], "error: No folder at /no/such/folder."),
    (["build", "--world", "test:lots", "--out", "x"], "error: --world takes SPLIT:N"),
    (["search", "/no/such/index", "red"], "error: No search index at /no/such/index"),
    (["search", "IDX", ""], "error: The search text is empty"),
])
def test_cli_errors_are_one_line(folder, tmp_path, monkeypatch, capsys, argv, message):
    import vlp

    monkeypatch.setattr(vlp, "load", lambda spec="vlp-tiny", device="auto": FakeModel(spec=spec), raising=False)
    SearchIndex.build(FakeModel(), folder, progress=False).save(tmp_path / "idx")
    assert run_cli([a.replace("IDX", str(tmp_path / "idx")) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
