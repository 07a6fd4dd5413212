"""The demo's handlers, called directly: no server, no browser."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from demo import draw
from demo import handlers as h
from vlp import world

EXAMPLE = h.example_files()[0]


@pytest.fixture(scope="module")
def known():
    scenes = h.KnownScenes()
    h.load_examples(scenes)
    return scenes


@pytest.fixture(scope="module")
def gallery(model, tmp_path_factory):
    return h.Gallery(model, "world:24", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.txt").write_text("not an image")
    (d / "broken.png").write_bytes(EXAMPLE.read_bytes()[:60])  # a PNG cut short
    Image.new("1", (7000, 6000)).save(d / "huge.png")  # 42 megapixels, a few kB
    return d


class NoCaptions:
    """The embedded model, pretending it cannot caption or answer (like an OpenCLIP model)."""

    can_caption = False
    can_answer = False

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)


# ----------------------------------------------------------------------------- examples and scenes


def test_examples_are_test_scenes_drawn_by_the_world():
    files = h.example_files()
    assert 4 <= len(files) <= 8
    for png in files:
        scene = world.Scene.load_json(png.with_suffix(".json"))
        split, index = png.stem.split("-")
        assert split == "test" and world.sample_scene("test", int(index)).to_dict() == scene.to_dict()
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(world.render(scene)))


def test_known_scenes_are_found_by_their_pixels(known, tmp_path):
    scene = world.Scene.load_json(EXAMPLE.with_suffix(".json"))
    copy = tmp_path / "renamed.png"
    Image.open(EXAMPLE).save(copy)  # another file, the same pixels
    assert known.find(h.load_image(copy))[0].to_dict() == scene.to_dict()
    assert world.caption(scene) in h.scene_note(known, str(copy))
    assert "does not know" in h.scene_note(known, Image.new("RGB", (64, 64), "white"))
    assert h.scene_note(known, None) == ""


def test_random_scene_is_remembered(known):
    image, note = h.random_scene(known, "novel", index=7)
    scene = world.sample_scene("novel", 7)
    assert image.size == (64, 64)
    assert world.caption(scene) in note and "novel scene #7" in note
    assert known.find(image)[0] == scene
    with pytest.raises(ValueError, match="Unknown split"):
        h.random_scene(known, "train")


# ----------------------------------------------------------------------------- caption and match


def test_caption_gives_text_score_and_verdict(model, known):
    text, score, verdict = h.caption(model, str(EXAMPLE), "greedy", 3, 30, known)
    assert text == model.caption(h.load_image(EXAMPLE))
    assert score is None or 0.0 <= score <= 1.0
    truth = world.caption(world.Scene.load_json(EXAMPLE.with_suffix(".json")))
    assert ("Right" in verdict) == world.caption_correct(text, world.Scene.load_json(EXAMPLE.with_suffix(".json")))
    assert "Right" in verdict or truth in verdict


def test_caption_beam_and_length(model):
    text, _, verdict = h.caption(model, str(EXAMPLE), "beam", 2, 3)
    assert len(text.split()) <= 3 and verdict == ""
    with pytest.raises(ValueError, match="Decoding"):
        h.caption(model, str(EXAMPLE), "sampling")
    with pytest.raises(ValueError, match="maximum length"):
        h.caption(model, str(EXAMPLE), "greedy", 1, 0)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("name, message", [("notes.txt", "'notes.txt' is not a readable image"),
                                           ("broken.png", "'broken.png' is not a readable image"),
                                           ("huge.png", "too large")])
def test_bad_images_are_refused_in_one_sentence(model, bad_files, name, message):
    with pytest.raises(ValueError, match=message) as err:
        h.caption(model, str(bad_files / name))
    assert str(bad_files) not in str(err.value)  # the file's name, not the server's path


def test_no_image(model):
    with pytest.raises(ValueError, match="Give an image first"):
        h.caption(model, None)
    with pytest.raises(ValueError, match="Give an image first"):
        h.answer(model, "", "how many shapes are there?")


def test_match(model):
    assert 0.0 <= h.match(model, str(EXAMPLE), "a large red circle") <= 1.0
    for text, message in [("", "empty"), ("   ", "empty"), ("a red zebra", "does not know"),
                          ("a " * 200, "too long")]:
        with pytest.raises(ValueError, match=message):
            h.match(model, str(EXAMPLE), text)


def test_a_model_that_cannot_caption_says_so(model):
    weak = NoCaptions(model)
    assert set(h.cannot(weak)) == {"caption", "ask"}
    with pytest.raises(ValueError, match="cannot write captions"):
        h.caption(weak, str(EXAMPLE))
    with pytest.raises(ValueError, match="cannot answer questions"):
        h.answer(weak, str(EXAMPLE), "how many shapes are there?")
    assert h.cannot(model) == {}


def test_the_ui_says_what_the_model_cannot_do(model, tmp_path):
    import gradio as gr

    from demo.ui import build_demo

    demo = build_demo(NoCaptions(model), "world:10", cache_dir=tmp_path)
    notices = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "⚠" in str(b.value)]
    assert len(notices) == 2 and "cannot write captions" in notices[0] and "cannot answer" in notices[1]
    buttons = {b.value: b.interactive for b in demo.blocks.values() if isinstance(b, gr.Button)}
    assert buttons["Caption"] is False and buttons["Ask"] is False and buttons["Search"] is not False


# ----------------------------------------------------------------------------- ask


def test_answer_gives_top5_probabilities(model):
    said, scores, note = h.answer(model, str(EXAMPLE), "how many shapes are there?")
    assert isinstance(said, str) and note == ""
    assert len(scores) == 5 and all(0.0 <= p <= 1.0 for p in scores.values())
    assert sum(scores.values()) <= 1.0 + 1e-6


@pytest.mark.parametrize("question, message", [("", "question is empty"), ("what is a dog?", "'dog'"),
                                               ("what color is the circle " * 12, "too long")])
def test_bad_questions(model, question, message):
    with pytest.raises(ValueError, match=message):
        h.answer(model, str(EXAMPLE), question)


def test_example_questions_know_their_answers(model, known):
    questions = h.example_questions(str(EXAMPLE), known)
    assert 1 <= len(questions) <= 5 and len(set(questions)) == len(questions)
    scene = world.Scene.load_json(EXAMPLE.with_suffix(".json"))
    image = h.load_image(EXAMPLE)
    for q in questions:
        truth = known.true_answer(image, q)
        assert truth in world.all_answers()
        model.check_text(q, "question")  # the model can read every example question
    said, _, note = h.answer(model, str(EXAMPLE), questions[0], known)
    assert known.true_answer(image, questions[0]) in note
    assert ("Right" in note) == (said == known.true_answer(image, questions[0]))
    assert h.example_questions(Image.new("RGB", (64, 64), "white"), known) == h.GENERIC_QUESTIONS
    assert h.example_questions(None, known) == h.GENERIC_QUESTIONS
    assert scene.objects


# ----------------------------------------------------------------------------- search


def test_gallery_specs(tmp_path):
    assert h.parse_gallery_spec("world:200") == (200, None)
    assert h.parse_gallery_spec("world") == (2000, None)
    assert h.parse_gallery_spec(str(tmp_path)) == (0, tmp_path)
    with pytest.raises(ValueError, match="neither world:N nor a folder"):
        h.parse_gallery_spec("/no/such/folder")
    with pytest.raises(ValueError, match="1 to 1,000,000"):
        h.parse_gallery_spec("world:0")


def test_search_by_text_and_image(model, gallery):
    assert "being built" in gallery.describe()
    pictures, summary = h.search(model, gallery, None, "a large red circle", None, 5, False)
    assert len(pictures) == 5 and "cosine" in summary
    assert pictures[0][1].startswith("1. cos ") and pictures[0][0].size == (192, 192)
    assert gallery.ready and "24 images" in gallery.describe() and model.fingerprint in gallery.describe()
    scores = [float(label.split()[2]) for _, label in pictures]
    assert scores == sorted(scores, reverse=True)
    pictures, summary = h.search(model, gallery, None, "a large red circle", None, 3, True)
    assert len(pictures) == 3 and "ITM" in summary and pictures[0][1].startswith("1. ITM ")
    pictures, summary = h.search(model, gallery, None, "", str(EXAMPLE), 4)
    assert len(pictures) == 4 and "Nearest captions" in summary


def test_search_refuses_bad_queries(model, gallery):
    for args, message in [(("", None, 5), "Type a sentence"), (("a red zebra", None, 5), "'zebra'"),
                          (("a red circle", None, 0), "1 to 48")]:
        with pytest.raises(ValueError, match=message):
            h.search(model, gallery, None, *args)


def test_add_own_images(model, gallery, bad_files, tmp_path):
    for i in range(3):
        world.render(world.sample_scene("val", i), 96).save(tmp_path / f"mine-{i}.png")
    files = sorted(str(p) for p in tmp_path.glob("*.png")) + [str(bad_files / "notes.txt")]
    seen = []
    own, text = h.add_images(model, None, files, lambda f, d: seen.append(f))
    assert len(own) == 3 and "Added 3" in text and "notes.txt" in text
    assert seen[-1] == 1.0
    assert "Yours:** 3 images" in h.index_summary(gallery, own)
    pictures, _ = h.search(model, gallery, own, "", str(tmp_path / "mine-1.png"), 3)
    assert "yours: mine-1.png" in pictures[0][1]  # its own image is the nearest
    with pytest.raises(ValueError, match="Choose one or more"):
        h.add_images(model, own, [])


# ----------------------------------------------------------------------------- attention


def test_attention_pictures(model):
    maps = h.compute_attention(model, str(EXAMPLE), "")
    assert maps.tokens and h.attention_caption(maps).endswith(" ".join(maps.tokens) + "**")
    assert [i for _, i in h.word_choices(maps)] == list(range(1, len(maps.tokens) + 1))
    vision, grid, rollout, cross, text = h.draw_attention(maps, 2, 1, False, 1)
    assert grid is None
    for picture in (vision, rollout, cross, text):
        assert isinstance(picture, Image.Image) and picture.width > 300 and picture.height > 200
    grid = h.draw_attention(maps, 2, 1, True, 1)[1]
    assert grid.width > vision.width
    h.draw_vision(maps, 99, 99)  # out of range: clamped, not an error
    h.draw_cross(maps, 99)
    given = h.compute_attention(model, str(EXAMPLE), "a small red circle")
    assert given.tokens == ["a", "small", "red", "circle"]
    with pytest.raises(ValueError, match="'zebra'"):
        h.compute_attention(model, str(EXAMPLE), "a zebra")


def test_draw_helpers():
    small = Image.new("RGB", (64, 64), "red")
    big = draw.upscale(small)
    assert big.size == (draw.DISPLAY, draw.DISPLAY) and big.getpixel((5, 5)) == (255, 0, 0)
    heat = np.zeros((8, 8))
    heat[2, 3] = 1.0
    assert draw.heatmap(small, heat, "one hot patch").mode == "RGB"
    assert draw.heatmap(small, np.zeros((8, 8)), "all zero").width > 0  # no division by zero
    assert draw.message("nothing here").size == (480, 120)


# ----------------------------------------------------------------------------- learn


def test_worked_example_classic():
    out = h.worked(h.CLASSIC["Q"], h.CLASSIC["K"], h.CLASSIC["V"])
    assert len(out) == 9
    scores, scaled, weights, output = out[1], out[3], out[5], out[7]
    assert scores.iloc[:, 1:].values.tolist() == [[4, 5, 6], [8, 10, 12], [12, 15, 18]]
    assert scaled.iloc[:, 1:].values.tolist() == scores.iloc[:, 1:].values.tolist()  # √1 = 1
    np.testing.assert_allclose(weights.iloc[0, 1:].astype(float), [0.0900, 0.2447, 0.6652], atol=1e-4)
    np.testing.assert_allclose(output.iloc[:, 1].astype(float), [8.5752, 8.8509, 8.9480], atol=1e-4)
    assert list(scores.columns) == ["", "k1", "k2", "k3"] and scores.iloc[0, 0] == "q1"
    assert "3×3" in out[0] and "√1" in out[2]
    mistakes = out[8]
    assert "√3" in mistakes and "[4, 10, 18]" in mistakes and "32" in mistakes
    assert "exponentiate" in mistakes and "normalise" in mistakes


def test_worked_example_accepts_frames_and_refuses_bad_cells():
    import pandas as pd

    out = h.worked(pd.DataFrame([[1, 0], [0, 1]]), {"headers": ["a", "b"], "data": [[1, 0], [0, 1], ["", ""]]},
                   [["2"], ["3"]])
    assert out[1].shape == (2, 3) and "√2" in out[2]
    with pytest.raises(ValueError, match="Q, row 2, column 1: 'x' is not a number"):
        h.worked([[1], ["x"]], [[1]], [[1]])
    with pytest.raises(ValueError, match="same width d_k"):
        h.worked([[1, 2]], [[1]], [[1]])
    with pytest.raises(ValueError, match="K is empty"):
        h.worked([[1]], [], [[1]])


# ----------------------------------------------------------------------------- about


def test_card_markdown(model):
    text = h.card_markdown(model)
    assert text.startswith(f"## {model.spec}")
    assert "### Measured" in text and "| metric |" in text
    assert "### What it cannot do" in text and h.REAL_WEIGHTS in text
    metrics = json.loads((h.ROOT / "assets" / "vlp-tiny" / "metrics.json").read_text())
    assert f"{metrics['test']['vqa_accuracy']:.3f}" in text
    assert model.spec in h.model_line(model) and "captions" in h.model_line(model)
