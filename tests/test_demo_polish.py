"""Issue 11 in the demo's handlers and wiring, without a browser: the out-of-domain notice beside
every result, the known words one click away, text attention rows that sum to 1, maps and
results cleared rather than left stale, one error as one message, scores "–" before a run, the
search's explanations, and the page's header (tests/test_browser.py looks at it in Chromium)."""
from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demo import about, ask, attention, caption, draw, search
from demo.gallery import Gallery
from demo.inputs import WORDS_LIST, domain_note, score_number, user_error
from demo.ui import build_demo
from vlp import world
from vlp.errors import UnknownWords

PHOTOS = ("astronaut", "chelsea", "coffee")  # scikit-image's sample photos: a test dependency, no download
NOTICE = "does not look like a Shapes World scene"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        paths.append(folder / f"{name}.jpg")
        Image.fromarray(getattr(skimage.data, name)()).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def scene_uploads(tmp_path_factory):
    """One Shapes World scene as a visitor may upload it: PNG, JPEG, RGBA, grey, and larger."""
    folder = tmp_path_factory.mktemp("scenes")
    scene = world.render(world.sample_scene("test", 11))
    files = {"scene.png": scene, "scene.jpg": scene, "rgba.png": scene.convert("RGBA"), "grey.png": scene.convert("L"),
             "large.jpg": scene.resize((500, 500), Image.NEAREST)}
    for name, image in files.items():
        image.save(folder / name)
    return [folder / name for name in files]


@pytest.fixture(scope="module")
def gallery(model, tmp_path_factory):
    return Gallery(model, "world:24", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def page(model, tmp_path_factory):
    return build_demo(model, "world:10", cache_dir=tmp_path_factory.mktemp("page")).blocks


def results_of(model, gallery, path) -> dict[str, str]:
    """The Markdown beside each result for the image at `path`, as the tabs show it."""
    maps = attention.compute_attention(model, str(path))
    return {"caption": caption.caption(model, str(path)).verdict,
            "ask": ask.answer(model, str(path), "what color is the circle?").verdict,
            "search": search.search(model, gallery, None, "", str(path), 4).summary,
            "attention": attention.attention_caption(maps, domain_note(model, maps.image)),
            "match": domain_note(model, Image.open(path))}


def test_a_photo_gets_the_notice_beside_every_result(model, gallery, photos):
    for path in photos:
        for tab, shown in results_of(model, gallery, path).items():
            assert NOTICE in shown and "VLP_MODEL" in shown and "python app.py --model" in shown, (path.name, tab)


def test_a_scene_in_any_format_gets_no_notice(model, gallery, scene_uploads):
    for path in scene_uploads:
        for tab, shown in results_of(model, gallery, path).items():
            assert "Shapes World scene" not in shown and "⚠" not in shown, (path.name, tab, shown)


def test_the_known_words_are_one_click_away(model, page):
    listed = ask.known_words(model)
    for word in model.vocabulary():
        if word.isalpha():
            assert f"`{word}`" in listed
    assert any(a.label == WORDS_LIST for a in page.blocks.values() if isinstance(a, gr.Accordion))
    sentence = user_error(UnknownWords(["dog"], "question")).message
    assert "'dog'" in sentence and WORDS_LIST in sentence and "python -m vlp words" in sentence

    @dataclasses.dataclass
    class OpenVocabulary:
        spec: str = "blip"

        def vocabulary(self):
            return None

    assert ask.known_words(OpenVocabulary()) == ""  # no list for a model that reads any word


def test_text_self_attention_rows_sum_to_one_with_the_start_token(model):
    maps = attention.compute_attention(model, str(world_example()), "a large red circle")
    weights, columns = attention.text_matrix(maps)
    assert columns == [attention.START, "a", "large", "red", "circle"]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert weights[0, 0] > 0.01  # the first word reads mostly the start token: the share was missing
    assert attention.draw_text(maps).width > 300


def world_example():
    from demo.scenes import example_files

    return example_files()[1]


def fns(page) -> list:
    return list(page.fns.values())


def by_elem(page, elem_id: str):
    return next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_a_new_image_clears_the_maps_and_results_of_the_old_one(page):
    image = by_elem(page, "image")
    cleared = {"vision-map", "rollout-map", "cross-map", "text-map", "attention-words", "caption-out",
               "caption-verdict", "match-note"}
    on_change = [fn for fn in fns(page) if (image._id, "change") in fn.targets]
    emptied = set()
    for fn in on_change:
        if fn.inputs:  # the queued ones read the image; the clearing ones take nothing
            continue
        values = fn.fn()
        values = values if isinstance(values, tuple) else (values,)
        for block, value in zip(fn.outputs, values):
            if getattr(block, "elem_id", None) in cleared and value in (None, ""):
                emptied.add(block.elem_id)
    assert emptied == cleared


@pytest.mark.parametrize("api", ["caption", "answer", "match", "search", "search_image", "attention"])
def test_an_error_is_one_message_and_leaves_no_stale_result(page, api):
    event = next(fn for fn in fns(page) if fn.api_name == api)
    assert 1 <= len(event.show_progress_on or event.outputs) <= 2  # progress and any "Error" badge: the result only
    after = [fn for fn in fns(page) if fn.trigger_after == event._id and fn.trigger_only_on_failure]
    assert len(after) == 1 and set(after[0].outputs) >= set(event.outputs)
    values = after[0].fn()
    assert all(v is None for v in (values if isinstance(values, tuple) else (values,)))


def test_scores_show_a_dash_before_a_run(page):
    numbers = [b for b in page.blocks.values() if isinstance(b, gr.Number)]
    assert {b.label for b in numbers} >= {"Score of the caption", "Score of the sentence"}
    for number in numbers:
        assert number.value == "" and number.placeholder == "–" and number.postprocess(None) == ""
        assert number.postprocess(0.123456) == 0.1235
    assert score_number(precision=2).postprocess(None) == ""


def test_search_explains_its_scores_and_says_when_a_pair_was_never_seen(model, gallery):
    found = search.search(model, gallery, None, "a large purple triangle", None, 4)
    assert "cosine similarity" in found.summary and "Training never showed a purple triangle" in found.summary
    assert "Training never showed" not in search.search(model, gallery, None, "a large red circle", None, 4).summary
    assert search.unseen_pairs("Yellow squares and an orange circle") == ["orange circle", "yellow square"]
    assert search.unseen_pairs("a yellow circle left of a purple square") == []
    ranked = search.search(model, gallery, None, "a large red circle", None, 4, rerank=True)
    assert "probability" in ranked.summary
    for _, label in ranked.pictures:  # the whole caption, for the page to show under the tile
        assert label.split(" · ", 1)[1] in {world.caption(s) for s in world.scenes("test", 24)}


def test_skipped_files_are_named_without_a_temporary_path(model, tmp_path):
    bad = tmp_path / "upload-123" / "holiday.png"
    bad.parent.mkdir()
    bad.write_text("not an image")
    world.render(world.sample_scene("val", 1)).save(tmp_path / "fine.png")
    summary = search.add_images(model, None, [str(tmp_path / "fine.png"), str(bad)]).summary
    assert "holiday.png" in summary and str(tmp_path) not in summary and "Error" not in summary


def test_colour_bars_show_the_colours_of_the_overlay():
    scene = world.render(world.sample_scene("test", 2))
    heat = np.zeros((8, 8))
    heat[3, 3] = 0.5
    picture = np.asarray(draw.heatmap(scene, heat, "one patch"))
    corner = picture[draw.PAD + 40, draw.PAD + 3]  # weight 0 over the plain background, below the title
    top = draw.PAD + draw._title_height(["one patch"], (15, 13))
    bar_x = draw.PAD + draw.DISPLAY + 14 + draw.BAR // 2
    bottom = picture[top + draw.DISPLAY - 2, bar_x]  # the bar at 0
    assert np.abs(corner.astype(int) - bottom.astype(int)).max() <= 3


def test_the_attention_tab_explains_the_class_token_and_rollout(page):
    texts = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown) and isinstance(b.value, str)]
    assert any("class token" in t and "rollout" in t.lower() for t in texts)


def test_the_header_opens_the_about_card_and_mentions_space_variables(model, page):
    button = by_elem(page, "about-btn")
    opens = next(fn for fn in fns(page) if (button._id, "click") in fn.targets)
    assert opens.fn().selected == "about"
    card = about.card_markdown(model)
    assert "VLP_MODEL" in card and "VLP_CAPTIONER" in card and "Space" in card
    assert any(isinstance(b, gr.Checkbox) and b.label == "Large text (projector)" for b in page.blocks.values())
