"""The demo's handlers, called directly: no server, no browser."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from demo import about, ask, attention, caption, draw, learn, scenes, search
from demo.gallery import Gallery, parse_gallery_spec
from demo.inputs import safe
from demo.ui import build_demo
from vlp import world
from vlp.errors import BadArgument, BadImage, BadText, UnknownWords, Unsupported
from vlp.images import load_image
from vlp.protocol import Capabilities, ModelBase

EXAMPLE = scenes.example_files()[0]
EXAMPLE_SCENE = world.Scene.load_json(EXAMPLE.with_suffix(".json"))


@pytest.fixture(scope="module")
def known():
    found = scenes.KnownScenes()
    scenes.load_examples(found)
    return found


@pytest.fixture(scope="module")
def gallery(model, tmp_path_factory):
    return Gallery(model, "world:24", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.txt").write_text("not an image")
    (d / "broken.png").write_bytes(EXAMPLE.read_bytes()[:60])  # a PNG cut short
    Image.new("1", (7000, 6000)).save(d / "huge.png")  # 42 megapixels, a few kB
    return d


class Declares:
    """The embedded model declaring other capabilities, as another family or a composition would."""

    def __init__(self, model, **changes):
        self._model = model
        self.capabilities = dataclasses.replace(model.capabilities, **changes)

    def __getattr__(self, name):
        return getattr(self._model, name)


@dataclasses.dataclass
class Stub(ModelBase):
    """A model that writes `said` as every caption and answer, and matches with `match_score`
    (a float, or an exception to raise); the batched forms are ModelBase's loops over these."""

    said: str
    match_score: object = None
    capabilities: Capabilities = Capabilities(caption=True, answer=True, match=None, embed=False, attention=False)
    spec: str = "stub"

    def caption(self, image, num_beams=1, max_length=30):
        return self.said

    def answer(self, image, question):
        return self.said

    def answer_scores(self, image, question, k=5):
        return [(self.said, 1.0)]

    def match(self, image, text):
        if isinstance(self.match_score, Exception):
            raise self.match_score
        return self.match_score


def components(blocks: gr.Blocks, kind) -> list:
    return [b for b in blocks.blocks.values() if isinstance(b, kind)]


# ----------------------------------------------------------------------------- examples and scenes


def test_examples_are_test_scenes_drawn_by_the_world():
    files = scenes.example_files()
    assert 4 <= len(files) <= 8
    for png in files:
        scene = world.Scene.load_json(png.with_suffix(".json"))
        split, index = png.stem.split("-")
        assert split == "test" and world.sample_scene("test", int(index)).to_dict() == scene.to_dict()
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(world.render(scene)))


def test_known_scenes_are_found_by_their_pixels(known, tmp_path):
    copy = tmp_path / "renamed.png"
    Image.open(EXAMPLE).save(copy)  # another file, the same pixels
    assert known.find(load_image(copy))[0].to_dict() == EXAMPLE_SCENE.to_dict()
    assert world.caption(EXAMPLE_SCENE) in scenes.scene_note(known, str(copy))
    assert "does not know" in scenes.scene_note(known, Image.new("RGB", (64, 64), "white"))
    assert scenes.scene_note(known, None) == ""


def test_random_scene_is_remembered(known):
    image, note = scenes.random_scene(known, "novel", index=7)
    scene = world.sample_scene("novel", 7)
    assert image.size == (64, 64)
    assert world.caption(scene) in note and "novel scene #7" in note
    assert known.find(image)[0] == scene
    with pytest.raises(BadArgument, match="Unknown split"):
        scenes.random_scene(known, "train")


# ----------------------------------------------------------------------------- caption and match


def test_caption_gives_text_its_itm_score_and_verdict(model, known):
    result = caption.caption(model, str(EXAMPLE), "greedy", 3, 30, known)
    image = load_image(EXAMPLE)
    assert result.text == model.caption(image)
    assert model.capabilities.match == "probability"  # so the caption must be scored, by ITM
    assert isinstance(result.score, float) and 0.0 <= result.score <= 1.0
    assert result.score == pytest.approx(model.match(image, result.text), abs=1e-4)
    assert result.verdict.startswith("✓ Right" if world.caption_correct(result.text, EXAMPLE_SCENE) else "✗ Not quite")


def test_caption_verdict_and_score_do_not_depend_on_the_model(known):
    truth = world.caption(EXAMPLE_SCENE)  # a large blue circle to the left of a large orange square
    right = caption.caption(Stub(truth), str(EXAMPLE), known=known)
    assert right.verdict == f"✓ Right: it names exactly the objects of example {EXAMPLE.stem}."
    assert right.score is None  # the stub cannot match: no score, no error
    wrong = caption.caption(Stub("a small red triangle"), str(EXAMPLE), known=known)
    assert wrong.verdict == f"✗ Not quite: the truth is **{truth}**."
    unknown = caption.caption(Stub(truth), Image.new("RGB", (64, 64), "white"), known=known)
    assert unknown.verdict == ""
    itm = Capabilities(caption=True, answer=True, match="probability", embed=False, attention=False)
    assert caption.caption(Stub(truth, 0.87654321, itm), str(EXAMPLE)).score == 0.8765
    # a composed captioner's words that its matcher never learned: no score, not an error
    assert caption.caption(Stub("a photo of a dog", UnknownWords(["photo", "dog"]), itm), str(EXAMPLE)).score is None


def test_caption_beam_and_length(model):
    result = caption.caption(model, str(EXAMPLE), "beam", 2, 3)
    assert len(result.text.split()) <= 3 and result.verdict == ""
    with pytest.raises(BadArgument, match="Decoding"):
        caption.caption(model, str(EXAMPLE), "sampling")
    with pytest.raises(BadArgument, match="maximum length"):
        caption.caption(model, str(EXAMPLE), "greedy", 1, 0)
    with pytest.raises(BadArgument, match="number of beams must be from 1 to 8"):
        caption.caption(model, str(EXAMPLE), "beam", 9, 30)  # the slider's range, from vlp.limits
    with pytest.raises(BadArgument, match="maximum length must be from 1 to 40"):
        caption.caption(model, str(EXAMPLE), "greedy", 1, 41)
    for value in (float("inf"), float("nan"), "abc", None):  # JSON may carry Infinity and NaN
        with pytest.raises(BadArgument, match="number of beams must be a whole number"):
            caption.caption(model, str(EXAMPLE), "beam", value, 30)


@pytest.mark.parametrize("name, message", [("notes.txt", "'notes.txt' is not a readable image"),
                                           ("broken.png", "'broken.png' is not a readable image"),
                                           ("huge.png", "too large")])
def test_bad_images_are_refused_in_one_sentence(model, bad_files, name, message):
    with pytest.raises(BadImage, match=message) as err:
        caption.caption(model, str(bad_files / name))
    assert str(bad_files) not in str(err.value)  # the file's name, not the server's path


def test_no_image(model):
    with pytest.raises(BadImage, match="Give an image first"):
        caption.caption(model, None)
    with pytest.raises(BadImage, match="Give an image first"):
        ask.answer(model, "", "how many shapes are there?")


def test_match(model):
    assert 0.0 <= caption.match(model, str(EXAMPLE), "a large red circle") <= 1.0
    for text, message in [("", "empty"), ("   ", "empty"), ("a red zebra", "does not know"),
                          ("a " * 200, "too long")]:
        with pytest.raises(BadText, match=message):
            caption.match(model, str(EXAMPLE), text)


def test_a_model_that_cannot_caption_says_so(model):
    weak = Declares(model, caption=False, answer=False)
    with pytest.raises(Unsupported, match="cannot write captions.*--captioner"):
        caption.caption(weak, str(EXAMPLE))
    with pytest.raises(Unsupported, match="cannot answer questions.*--model"):
        ask.answer(weak, str(EXAMPLE), "how many shapes are there?")
    with pytest.raises(Unsupported, match="cannot search"):
        search.search(Declares(model, embed=False), None, None, "a red circle")


def test_the_ui_says_what_the_model_cannot_do(model, tmp_path):
    blocks = build_demo(Declares(model, caption=False, answer=False), "world:10", cache_dir=tmp_path).blocks
    notices = [b.value for b in components(blocks, gr.Markdown) if "⚠" in str(b.value)]
    assert len(notices) == 2 and "cannot write captions" in notices[0] and "cannot answer" in notices[1]
    buttons = {b.value: b.interactive for b in components(blocks, gr.Button)}
    assert buttons["Caption"] is False and buttons["Ask"] is False and buttons["Search"] is not False


@pytest.mark.parametrize("kind, words, rerank", [("probability", "the probability that the text describes", True),
                                                 ("cosine", "a squashed cosine similarity", False)])
def test_the_score_label_and_reranking_follow_the_declared_match(model, tmp_path, kind, words, rerank):
    """A trained ITM head (vlp-tiny, alone or composed with a captioner) is a probability and
    re-ranks; a cosine (CLIP) is called what it is, and re-ranking is off."""
    blocks = build_demo(Declares(model, match=kind), "world:10", cache_dir=tmp_path).blocks
    numbers = {b.label: b.info for b in components(blocks, gr.Number)}
    assert words in numbers["Score of the caption"] and words in numbers["Score of the sentence"]
    [checkbox] = [b for b in components(blocks, gr.Checkbox) if b.label == "Re-rank with the ITM head"]
    assert checkbox.interactive is rerank
    assert ("no ITM head" in checkbox.info) is not rerank


def test_safe_turns_only_vlp_errors_into_one_sentence():
    def refuse(error):
        raise error

    with pytest.raises(gr.Error, match="no such beam") as err:
        safe(refuse)(BadArgument("no such beam"))
    assert err.value.title == "Cannot do that"
    with pytest.raises(ValueError, match="a bug") as err:  # a plain ValueError is a bug, and shows as one
        safe(refuse)(ValueError("a bug"))
    assert not isinstance(err.value, gr.Error)


# ----------------------------------------------------------------------------- ask


def test_answer_gives_top5_probabilities(model):
    result = ask.answer(model, str(EXAMPLE), "how many shapes are there?")
    assert isinstance(result.answer, str) and result.verdict == ""
    assert len(result.scores) == 5 and all(0.0 <= p <= 1.0 for p in result.scores.values())
    assert sum(result.scores.values()) <= 1.0 + 1e-6


@pytest.mark.parametrize("question, message", [("", "question is empty"), ("what is a dog?", "'dog'"),
                                               ("what color is the circle " * 12, "too long")])
def test_bad_questions(model, question, message):
    with pytest.raises(BadText, match=message):
        ask.answer(model, str(EXAMPLE), question)


def test_example_questions_are_judged_by_the_scenes_truth(model, known):
    questions = ask.example_questions(str(EXAMPLE), known)
    assert len(questions) == 5 and len(set(questions)) == 5
    # The world's answer to each question, found apart from the demo: an answer is a function of
    # the scene and the question, whichever random draw asked it.
    truths = {}
    for seed in range(3000):
        q, a, _ = world.sample_question(EXAMPLE_SCENE, np.random.default_rng(seed))
        truths[q] = a
    image = load_image(EXAMPLE)
    for q in questions:
        assert known.true_answer(image, q) == truths[q]
        model.check_text(q, "question")  # the model can read every example question
    assert ask.example_questions(Image.new("RGB", (64, 64), "white"), known) == ask.GENERIC_QUESTIONS
    assert ask.example_questions(None, known) == ask.GENERIC_QUESTIONS


def test_answer_verdict_against_the_true_answer(known):
    # a blue circle and an orange square; any question typed in the world's grammar is judged
    right = ask.answer(Stub("two"), str(EXAMPLE), "how many shapes are there?", known)
    assert right.answer == "two" and right.verdict == "✓ Right: the answer is **two**."
    wrong = ask.answer(Stub("three"), str(EXAMPLE), "How many things do you see", known)
    assert wrong.verdict == "✗ The true answer is **two**."
    assert ask.answer(Stub("yes"), str(EXAMPLE), "is there a red square?", known).verdict == "✗ The true answer is **no**."
    absent = ask.answer(Stub("there is no triangle"), str(EXAMPLE), "what colour is the triangle", known)
    assert absent.verdict == "✓ Right: the answer is **there is no triangle**."
    assert ask.answer(Stub("blue"), str(EXAMPLE), "what color is the shape?", known).verdict.startswith("Not judged")
    assert ask.answer(Stub("two"), Image.new("RGB", (64, 64), "white"), "how many shapes are there?", known).verdict == ""


# ----------------------------------------------------------------------------- search


def test_gallery_specs(tmp_path):
    assert parse_gallery_spec("world:200") == (200, None)
    assert parse_gallery_spec("world") == (2000, None)
    assert parse_gallery_spec(str(tmp_path)) == (0, tmp_path)
    with pytest.raises(BadArgument, match="neither world:N nor a folder"):
        parse_gallery_spec("/no/such/folder")
    with pytest.raises(BadArgument, match="1 to 1,000,000"):
        parse_gallery_spec("world:0")


def test_search_by_text_and_image(model, gallery):
    assert "being built" in gallery.describe()
    result = search.search(model, gallery, None, "a large red circle", None, 5, False)
    assert len(result.pictures) == 5 and "cosine" in result.summary
    assert result.pictures[0][1].startswith("1. cos ") and result.pictures[0][0].size == (192, 192)
    assert gallery.ready and "24 images" in gallery.describe() and model.fingerprint in gallery.describe()
    scores = [float(label.split()[2]) for _, label in result.pictures]
    assert scores == sorted(scores, reverse=True)
    result = search.search(model, gallery, None, "a large red circle", None, 3, True)
    assert len(result.pictures) == 3 and "ITM" in result.summary and result.pictures[0][1].startswith("1. ITM ")
    result = search.search(model, gallery, None, "", str(EXAMPLE), 4)
    assert len(result.pictures) == 4 and "Nearest captions" in result.summary


def test_search_refuses_bad_queries(model, gallery):
    for args, error, message in [(("", None, 5), BadArgument, "Type a sentence"),
                                 (("a red zebra", None, 5), UnknownWords, "'zebra'"),
                                 (("a red circle", None, 0), BadArgument, "1 to 48")]:
        with pytest.raises(error, match=message):
            search.search(model, gallery, None, *args)
    with pytest.raises(Unsupported, match="turn re-ranking off"):
        search.search(Declares(model, match="cosine"), gallery, None, "a red circle", None, 5, True)


def test_add_own_images(model, gallery, bad_files, tmp_path):
    for i in range(3):
        world.render(world.sample_scene("val", i), 96).save(tmp_path / f"mine-{i}.png")
    files = sorted(str(p) for p in tmp_path.glob("*.png")) + [str(bad_files / "notes.txt")]
    seen = []
    result = search.add_images(model, None, files, lambda f, d: seen.append(f))
    assert len(result.own) == 3 and "Added 3" in result.summary and "notes.txt" in result.summary
    assert seen[-1] == 1.0
    assert "Yours:** 3 images" in search.index_summary(gallery, result.own)
    found = search.search(model, gallery, result.own, "", str(tmp_path / "mine-1.png"), 3)
    assert "yours: mine-1.png" in found.pictures[0][1]  # its own image is the nearest
    with pytest.raises(BadArgument, match="Choose one or more"):
        search.add_images(model, result.own, [])


def test_adding_images_is_bounded_per_call_and_per_session(model, tmp_path):
    from vlp.index import SearchIndex
    from vlp.limits import MAX_ADD_FILES, MAX_OWN_IMAGES

    never_read = [str(tmp_path / f"missing-{i}.png") for i in range(MAX_ADD_FILES + 1)]
    with pytest.raises(BadArgument, match=f"at most {MAX_ADD_FILES} images at a time, not {MAX_ADD_FILES + 1}"):
        search.add_images(model, None, never_read)
    full = SearchIndex(model)
    full.add_embeddings(np.random.default_rng(0).normal(size=(MAX_OWN_IMAGES - 1, full.dim)).astype(np.float32))
    with pytest.raises(BadArgument, match=f"it has {MAX_OWN_IMAGES - 1}, so add at most 1 more"):
        search.add_images(model, full, never_read[:2])
    assert len(full) == MAX_OWN_IMAGES - 1


def test_images_are_added_a_few_at_a_time(model, tmp_path, monkeypatch):
    from vlp.index import SearchIndex
    from vlp.limits import MAX_ADD_FILES

    paths = []
    for i in range(MAX_ADD_FILES):
        paths.append(str(tmp_path / f"mine-{i}.png"))
        world.render(world.sample_scene("val", i), 64).save(paths[-1])
    batches, index_add = [], SearchIndex.add

    def add(index, items, *args, batch_size=64, **kwargs):
        batches.append((len(items), batch_size))  # an add holds at most batch_size decoded images
        return index_add(index, items, *args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(SearchIndex, "add", add)
    seen = []
    result = search.add_images(model, None, paths, lambda fraction, words: seen.append((fraction, words)))
    assert len(result.own) == MAX_ADD_FILES
    assert all(n <= search.ADD_BATCH and size <= search.ADD_BATCH for n, size in batches)
    assert len(seen) == len(batches) == -(-MAX_ADD_FILES // search.ADD_BATCH)  # the bar moves after each batch
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert seen[-1] == (1.0, f"indexed {MAX_ADD_FILES} of {MAX_ADD_FILES}")


def test_large_images_are_added_one_at_a_time(tmp_path):
    from vlp.limits import MAX_PIXELS

    sizes = {"small": (64, 64), "large": (5000, 5000), "huge": (7000, 6000)}  # 25 and 42 megapixels
    paths = []
    for i, kind in enumerate(["small", "large", "small", "large", "huge", "small", "small", "small", "small"]):
        paths.append(str(tmp_path / f"{i}-{kind}.png"))
        Image.new("1", sizes[kind]).save(paths[-1])  # a few kB each; only the header is read
    paths.append(str(tmp_path / "missing.png"))
    batches = search.add_batches(paths)
    assert [p for batch in batches for p in batch] == paths
    decoded = {"small": 64 * 64, "large": 5000 * 5000, "huge": 0, "missing": 0}  # huge: refused from its header
    for batch in batches:
        pixels = sum(decoded[Path(p).stem.split("-")[-1]] for p in batch)
        assert len(batch) <= search.ADD_BATCH and (pixels <= MAX_PIXELS or len(batch) == 1), batch
    assert sum(1 for batch in batches if any(p.endswith("-large.png") for p in batch)) == 2  # never two together


# ----------------------------------------------------------------------------- attention


def test_attention_pictures(model):
    maps = attention.compute_attention(model, str(EXAMPLE), "")
    assert maps.tokens and attention.attention_caption(maps).endswith(" ".join(maps.tokens) + "**")
    assert [i for _, i in attention.word_choices(maps)] == list(range(1, len(maps.tokens) + 1))
    pictures = attention.draw_attention(maps, 2, 1, False, 1)
    assert pictures.grid is None
    for picture in (pictures.vision, pictures.rollout, pictures.cross, pictures.text):
        assert isinstance(picture, Image.Image) and picture.width > 300 and picture.height > 200
    grid = attention.draw_attention(maps, 2, 1, True, 1).grid
    assert grid.width > pictures.vision.width
    attention.draw_vision(maps, 99, 99)  # out of range: clamped, not an error
    attention.draw_cross(maps, 99)
    given = attention.compute_attention(model, str(EXAMPLE), "a small red circle")
    assert given.tokens == ["a", "small", "red", "circle"]
    with pytest.raises(UnknownWords, match="'zebra'"):
        attention.compute_attention(model, str(EXAMPLE), "a zebra")


def test_the_attention_sliders_span_the_models_vision_encoder(model, tmp_path):
    blocks = build_demo(model, "world:10", cache_dir=tmp_path).blocks
    sliders = {b.label: (b.minimum, b.maximum, b.value) for b in components(blocks, gr.Slider)}
    layers, heads = model.vision_shape()
    assert sliders["Layer"] == (1, layers, layers) and sliders["Head (0 = mean of the heads)"] == (0, heads, 0)
    assert sliders["Beams (beam search only)"][:2] == (1, 8) and sliders["Maximum length (words)"][:2] == (1, 40)
    assert sliders["Results"][:2] == (1, 48)


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
    out = learn.worked(learn.CLASSIC["Q"], learn.CLASSIC["K"], learn.CLASSIC["V"])
    assert len(out.steps) == 4 and len(out.flat()) == 9
    (first, scores), (second, scaled), (_, weights), (_, output) = out.steps
    assert scores.iloc[:, 1:].values.tolist() == [[4, 5, 6], [8, 10, 12], [12, 15, 18]]
    assert scaled.iloc[:, 1:].values.tolist() == scores.iloc[:, 1:].values.tolist()  # √1 = 1
    np.testing.assert_allclose(weights.iloc[0, 1:].astype(float), [0.0900, 0.2447, 0.6652], atol=1e-4)
    np.testing.assert_allclose(output.iloc[:, 1].astype(float), [8.5752, 8.8509, 8.9480], atol=1e-4)
    assert list(scores.columns) == ["", "k1", "k2", "k3"] and scores.iloc[0, 0] == "q1"
    assert "3×3" in first and "√1" in second
    assert "√3" in out.mistakes and "[4, 10, 18]" in out.mistakes and "32" in out.mistakes
    assert "exponentiate" in out.mistakes and "normalise" in out.mistakes


def test_worked_example_accepts_frames_and_refuses_bad_cells():
    out = learn.worked(pd.DataFrame([[1, 0], [0, 1]]), {"headers": ["a", "b"], "data": [[1, 0], [0, 1], ["", ""]]},
                       [["2"], ["3"]])
    assert out.steps[0][1].shape == (2, 3) and "√2" in out.steps[1][0]
    with pytest.raises(BadArgument, match="Q, row 2, column 1: 'x' is not a number"):
        learn.worked([[1], ["x"]], [[1]], [[1]])
    with pytest.raises(BadArgument, match="K is empty"):
        learn.worked([[1]], [], [[1]])
    # the student reads each refusal as a sentence, the ones of vlp.attention too
    for q, k, v, message in [([[1, 2]], [[1]], [[1]], "same width d_k"), ([["nan"]], [[1]], [[1]], "finite")]:
        with pytest.raises(gr.Error, match=message):
            safe(learn.worked)(q, k, v)


def test_a_large_table_is_refused_before_its_cells_are_read():
    too_many = [["not a number"]] * 2000
    for q, message in [(too_many, "Q has 2000 rows"), ([[1] * 17], "Q has a row of 17 columns"),
                       ("abc", "Q must be a table"), ([1, 2], "Q must be a table")]:
        with pytest.raises(BadArgument, match=message):
            learn.worked(q, [[1]], [[1]])


def test_attention_sliders_that_are_not_numbers_are_refused(model):
    maps = attention.compute_attention(model, str(EXAMPLE), "")
    for call, message in [(lambda: attention.draw_vision(maps, "abc", 0), "layer must be a number"),
                          (lambda: attention.draw_vision(maps, 1, float("nan")), "head must be a number"),
                          (lambda: attention.draw_cross(maps, None), "word must be a number")]:
        with pytest.raises(BadArgument, match=message):
            call()
    assert attention.draw_vision(maps, 99, 99).width > 300  # a number out of range is clamped


# ----------------------------------------------------------------------------- about


def test_card_markdown(model):
    text = about.card_markdown(model)
    assert text.startswith(f"## {model.spec}")
    assert "### Measured" in text and "| metric |" in text
    assert "### What it cannot do" in text and about.REAL_WEIGHTS in text
    metrics = json.loads((scenes.EXAMPLES.parent / "vlp-tiny" / "metrics.json").read_text())
    assert f"{metrics['test']['vqa_accuracy']:.3f}" in text


def test_model_line_says_what_the_model_serves(model):
    assert about.model_line(model) == f"Model **{model.spec}** (`{model.fingerprint}`) · serves captions, answers, search"
    clip_like = Declares(model, caption=False, answer=False, match="cosine")
    assert about.model_line(clip_like).endswith("serves search")
    assert about.model_line(Declares(model, caption=False, answer=False, embed=False)).endswith("attention only")
