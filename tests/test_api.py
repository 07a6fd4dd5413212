"""VLPModel behind the protocol: its text rules, and encoding an image once per request."""
import pytest

import vlp
from vlp import world
from vlp.api import VLPModel
from vlp.errors import BadText, UnknownWords
from vlp.protocol import Model


@pytest.fixture(scope="module")
def model():
    return vlp.load(device="cpu")


def test_it_serves_the_protocol_and_declares_a_trained_matching_head(model):
    assert isinstance(model, Model)
    assert model.capabilities.itm and model.capabilities.caption and model.capabilities.answer
    assert model.vision_shape() == (model.net.config.vision.layers, model.net.config.vision.heads)


def test_a_caption_and_its_score_encode_the_image_once(model, monkeypatch):
    image = world.render(world.sample_scene("test", 3))
    calls = []
    encode = model.net.encode_image
    monkeypatch.setattr(model.net, "encode_image", lambda *a, **k: calls.append(1) or encode(*a, **k))
    text = model.caption(image)
    assert model.match(image, text) > 0.5
    model.answer(image, "how many shapes are there?")
    model.answer_scores(image, "how many shapes are there?")
    assert len(calls) == 1
    other = world.render(world.sample_scene("test", 4))
    model.caption(other)
    assert len(calls) == 2  # another picture is encoded anew


def test_its_own_captions_can_always_be_scored(model):
    # A grey scene is far from training: the decoder runs on ("a small red no no no …").
    grey = world.render(world.sample_scene("test", 0)).convert("L")
    text = model.caption(grey, max_length=40)
    assert len(model.tokenizer.encode(text)) <= model.max_text_words
    model.match(grey, text)  # no BadText


def test_questions_and_sentences_have_their_own_word_limits(model):
    image = world.render(world.sample_scene("test", 6))
    with pytest.raises(BadText, match="too long"):
        model.answer(image, " ".join(["circle"] * 25))
    model.match(image, " ".join(["circle"] * 25))  # a sentence may be longer than a question
    with pytest.raises(UnknownWords, match="'dog'"):
        model.answer(image, "what color is the dog?")


def test_answers_are_always_answers_even_far_from_training(model):
    import skimage.data

    images = [skimage.data.astronaut(), world.render(world.sample_scene("test", 0)).convert("L"),
              world.render(world.sample_scene("test", 7))]
    questions = ["how many shapes?", "what color is the circle", "is the triangle left of the square?",
                 "what shape is the purple object?", "circle", "is there a green diamond?"]
    said = model.answer_many([i for i in images for _ in questions], questions * len(images))
    assert set(said) <= set(model.answers)
    assert set(model.answers) == set(world.answer_set())  # trained on people's phrasings: phrase answers too
    top = model.answer_scores(images[2], "how many shapes are there?", k=3)
    assert [w for w, _ in top][0] == world.COUNT_WORDS[len(world.sample_scene("test", 7).objects)]
    assert all(w in model.answers for w, _ in top) and sum(p for _, p in top) <= 1.0 + 1e-6


def test_the_card_names_the_relations_its_metrics_say_it_reads_poorly(model):
    def limits(by_direction):
        metrics = {"test": {"relation_by_direction": by_direction}}
        return " ".join(VLPModel(model.net, model.tokenizer, metrics=metrics, device="cpu").card()["limits"])

    assert "below 76%" in limits({"left": 0.99, "below": 0.757}) and "left" not in limits({"left": 0.99, "below": 0.757})
    assert "poorly" not in limits({"left": 0.99, "below": 0.95})
