"""The demo reads an upload as the library does: the file goes to `vlp.images.load_image` as it
came, its size is checked on the header before anything decodes it, and identical uploads at
once each read a whole file."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageFile

from demo import ask, scenes
from vlp import world
from vlp.limits import MAX_PIXELS


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """One Shapes World scene saved as RGBA (its background transparent over noise), palette,
    16-bit grey and CMYK: files a converting reader gets wrong or reads differently."""
    folder = tmp_path_factory.mktemp("modes")
    rgb = world.render(world.sample_scene("test", 7), 64)
    a = np.asarray(rgb)
    background = np.abs(a.astype(int) - a[0, 0]).sum(axis=2) < 30
    rgba = np.dstack([a, np.where(background, 0, 255).astype(np.uint8)])
    rgba[background, :3] = np.random.default_rng(0).integers(0, 256, (int(background.sum()), 3))  # hidden noise
    images = {"rgba.png": Image.fromarray(rgba, "RGBA"), "palette.png": rgb.quantize(64),
              "grey16.png": Image.fromarray((a.mean(axis=2) * 257).astype(np.uint16)),
              "cmyk.tif": rgb.convert("CMYK")}
    paths = {}
    for name, image in images.items():
        paths[name] = folder / name
        image.save(paths[name])
    assert {Image.open(p).mode for p in paths.values()} == {"RGBA", "P", "I;16", "CMYK"}
    return paths


@pytest.mark.parametrize("name", ["rgba.png", "palette.png", "grey16.png", "cmyk.tif"])
def test_the_demo_captions_like_the_library(client, model, scene_files, name):
    text, _, _ = client.predict(handle_file(scene_files[name]), "greedy", 3, 30, api_name="/caption")
    assert text == model.caption(scene_files[name])


def test_the_size_is_checked_before_anything_decodes(client, tmp_path, monkeypatch):
    big = tmp_path / "grey.png"
    Image.new("L", (7000, 6000)).save(big)  # 42 megapixels in a few kB: over vlp's limit, under PIL's
    decoded = []
    pil_load = ImageFile.ImageFile.load

    def load(image):
        if image.width * image.height > MAX_PIXELS:
            decoded.append(image.size)
        return pil_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)  # the server runs in this process
    for api, args in [("/caption", ("greedy", 3, 30)), ("/answer", ("how many shapes are there?",))]:
        with pytest.raises(AppError, match="too large: 7000x6000"):
            client.predict(handle_file(big), *args, api_name=api)
    assert decoded == []


@pytest.mark.timeout(300)
def test_identical_uploads_at_once_each_read_the_whole_file(client, model, scene_files):
    path = scene_files["palette.png"]  # a converting reader would write one shared file for all
    expected = model.caption(path)
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: client.predict(handle_file(path), "greedy", 3, 30, api_name="/caption")[0],
                              range(8)))
    assert texts == [expected] * 8


def test_a_new_image_is_described_without_decoding_a_photo(tmp_path, monkeypatch):
    known = scenes.KnownScenes()
    scenes.load_examples(known)
    photo = tmp_path / "photo.png"
    Image.new("L", (6200, 6200), 128).save(photo)  # 38 megapixels: allowed, and no scene the demo drew
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    decoded = []
    pil_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or pil_load(image))
    assert scenes.scene_note(known, str(photo)) == "An uploaded image: the demo does not know its truth."
    assert ask.example_questions(str(photo), known) == ask.GENERIC_QUESTIONS
    assert decoded == []
    assert scenes.scene_note(known, str(notes)) == "⚠ 'notes.png' is not a readable image (not in an image format vlp reads)."
    assert ask.example_questions(str(notes), known) == ask.GENERIC_QUESTIONS


def test_a_photo_gets_the_models_notice_under_the_image_and_a_scene_does_not(tmp_path):
    import skimage.data

    import vlp

    model = vlp.load(device="cpu")
    known = scenes.KnownScenes()
    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo)
    note = scenes.scene_note(known, str(photo), model)
    assert "does not know its truth" in note and "Shapes World" in note and "VLP_MODEL" in note
    drawn = tmp_path / "drawn.png"
    world.render(world.sample_scene("test", 3)).convert("RGBA").save(drawn)
    assert scenes.scene_note(known, str(drawn), model) == "An uploaded image: the demo does not know its truth."
