"""Shapes World v1 (docs/world.md): generator, renderer, captions, parser, questions, CLI."""
import dataclasses
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vlp import world
from vlp.tokenizer import normalise
from vlp.world import Obj, Scene

COUNTS = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def sample():
    """500 scenes over all four splits."""
    return [world.sample_scene(split, i) for split in world.SPLITS for i in range(125)]


def _left(a, b):
    return a.x < b.x - 0.10


def _above(a, b):
    return a.y < b.y - 0.10


def _objects_of(description):
    return Counter(description.objects)


def _scene_objects(scene):
    return Counter((o.shape, o.color, o.size) for o in scene.objects)


# ----------------------------------------------------------------------------- generator


def test_same_split_and_index_give_the_same_scene_and_pixels():
    for split in world.SPLITS:
        for i in (0, 7, 1234):
            a, b = world.sample_scene(split, i), world.sample_scene(split, i)
            assert a.to_json() == b.to_json()
            assert np.array_equal(np.asarray(world.render(a)), np.asarray(world.render(b)))


def test_splits_and_indices_give_different_scenes():
    by_split = {split: [s.to_json() for s in world.scenes(split, 50)] for split in world.SPLITS}
    for x, y in [("train", "val"), ("train", "test"), ("val", "test"), ("train", "novel")]:
        assert not set(by_split[x]) & set(by_split[y])
    assert len(set(by_split["train"])) == 50
    assert [s.to_json() for s in world.scenes("train", 5, start=10)] == by_split["train"][10:15]


def test_scenes_do_not_depend_on_the_process_hash_seed():
    code = "from vlp import world; print([world.sample_scene(s, i).to_json() for s in world.SPLITS for i in range(20)])"
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, cwd=Path(__file__).parent.parent).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1]


def test_held_out_pairs_only_in_novel():
    for split in ("train", "val", "test"):
        for scene in world.scenes(split, 300):
            assert not any((o.color, o.shape) in world.HELD_OUT for o in scene.objects)
    for scene in world.scenes("novel", 300):
        assert any((o.color, o.shape) in world.HELD_OUT for o in scene.objects)


def test_geometry_background_and_counts(sample):
    counts = Counter()
    for scene in sample:
        counts[len(scene.objects)] += 1
        assert scene.size == 64
        bg = scene.background
        assert all(200 <= c <= 250 for c in bg) and max(bg) - min(bg) <= 12
        pairs = [(o.color, o.shape) for o in scene.objects]
        assert len(set(pairs)) == len(pairs)
        for o in scene.objects:
            lo, hi = {"small": (0.16, 0.20), "large": (0.28, 0.34)}[o.size]
            assert lo <= o.scale <= hi
            h = o.scale / 2
            assert o.x - h >= -1e-9 and o.x + h <= 1 + 1e-9 and o.y - h >= -1e-9 and o.y + h <= 1 + 1e-9
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1:]:
                need = (a.scale + b.scale) / 2 + 0.03
                assert abs(a.x - b.x) >= need - 1e-9 or abs(a.y - b.y) >= need - 1e-9
                # relations are never borderline in generated scenes
                for d in (abs(a.x - b.x), abs(a.y - b.y)):
                    assert abs(d - 0.10) >= 0.02 - 1e-9
    assert set(counts) == {1, 2, 3}
    assert all(c > 0.25 * len(sample) for c in counts.values())


# ----------------------------------------------------------------------------- JSON


def test_json_round_trip(sample, tmp_path):
    for scene in sample[::25]:
        again = Scene.from_json(scene.to_json())
        assert again == scene
        assert json.loads(scene.to_json()) == scene.to_dict()
    path = tmp_path / "scene.json"
    sample[0].save_json(path)
    assert Scene.load_json(path) == sample[0]


def test_json_matches_world_md_layout():
    d = world.sample_scene("val", 3).to_dict()
    assert list(d) == ["size", "background", "objects"]
    for o in d["objects"]:
        assert list(o)[:5] == ["shape", "color", "size", "x", "y"]


def test_hand_written_scene_without_scale_renders_at_the_middle_size():
    scene = Scene.from_dict({"objects": [{"shape": "square", "color": "blue", "size": "large", "x": 0.5, "y": 0.5}]})
    assert scene.objects[0].scale is None
    img = np.asarray(world.render(scene, 200)).astype(int)
    coloured = np.abs(img - np.array(scene.background)).sum(-1) > 60
    side = coloured.any(0).sum()
    assert abs(side - 0.31 * 200) <= 2


@pytest.mark.parametrize("change, message", [
    (lambda d: d["objects"][0].update(shape="hexagon"), "shape"),
    (lambda d: d["objects"][0].update(color="pink"), "color"),
    (lambda d: d["objects"][0].update(size="medium"), "size"),
    (lambda d: d["objects"][0].update(x=0.02), "canvas"),
    (lambda d: d["objects"][0].update(y=1.4), "canvas"),
    (lambda d: d["objects"][0].update(x="left"), "number"),
    (lambda d: d["objects"].extend([{"shape": "circle", "color": c, "size": "small", "x": 0.2 + 0.3 * k, "y": 0.8}
                                   for k, c in enumerate(["red", "green", "blue"])]), "1 to 3"),
    (lambda d: d["objects"].append(dict(d["objects"][0], x=0.8)), "share"),
    (lambda d: d["objects"].append({"shape": "square", "color": "red", "size": "small", "x": 0.4, "y": 0.4}),
     "overlap"),
    (lambda d: d.update(objects=[]), "1 to 3"),
    (lambda d: d.update(background=[300, 0, 0]), "background"),
    (lambda d: d["objects"][0].update(colour="red"), "unknown key"),
])
def test_from_dict_rejects_what_breaks_the_contract(change, message):
    d = {"size": 64, "background": [230, 230, 230],
         "objects": [{"shape": "circle", "color": "red", "size": "small", "x": 0.3, "y": 0.3}]}
    Scene.from_dict(d)  # the unchanged scene is fine
    change(d)
    with pytest.raises(ValueError, match=message):
        Scene.from_dict(d)


# ----------------------------------------------------------------------------- drawing


def test_render_sizes_and_array(sample):
    scene = sample[5]
    for size in (64, 256):
        img = world.render(scene, size)
        assert img.mode == "RGB" and img.size == (size, size)
    assert world.render(scene).size == (64, 64)
    arr = world.render_array(sample[:6], 64)
    assert arr.shape == (6, 64, 64, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr[5], np.asarray(world.render(scene)))
    with pytest.raises(ValueError):
        world.render(scene, 0)


def test_pixels_under_centres_and_on_background(sample):
    for scene in sample[::10]:
        for size in (64, 256):
            img = np.asarray(world.render(scene, size)).astype(int)
            colours = world.object_colors(scene)
            for o, rgb in zip(scene.objects, colours):
                assert np.all(np.abs(np.array(rgb) - world.COLOR_RGB[o.color]) <= 12)
                px = img[int(o.y * size), int(o.x * size)]
                assert np.all(np.abs(px - np.array(rgb)) <= 3), (o, px, rgb)
            # Pixels clear of every box by more than a pixel show the background exactly.
            centres = (np.arange(size) + 0.5) / size
            ys, xs = np.meshgrid(centres, centres, indexing="ij")
            free = np.ones((size, size), bool)
            for o in scene.objects:
                h = o.scale / 2 + 1.5 / size
                free &= ~((np.abs(xs - o.x) < h) & (np.abs(ys - o.y) < h))
            assert np.all(img[free] == np.array(scene.background))


@pytest.mark.parametrize("shape, fill", [("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5), ("diamond", 0.5)])
def test_shapes_fill_their_box_as_drawn_in_world_md(shape, fill):
    scene = Scene([Obj(shape, "red", "large", 0.5, 0.5, 0.3)], 64, (240, 240, 240))
    size = 300  # box of 90 px from 105 to 195
    img = np.asarray(world.render(scene, size)).astype(int)
    ink = (240 - img[..., 1]) / (240 - world.object_colors(scene)[0][1])  # green channel: 0 bg, 1 shape
    assert abs(ink.sum() / 90**2 - fill) < 0.03
    assert ink[:100].sum() == 0 and ink[200:].sum() == 0 and ink[:, :100].sum() == 0 and ink[:, 200:].sum() == 0
    top_mid, top_left, bottom_left, mid_left = ink[107, 150], ink[107, 107], ink[192, 107], ink[150, 107]
    expected = {  # (top middle, top-left corner, bottom-left corner, left middle) of the box
        "circle": (1, 0, 0, 1), "square": (1, 1, 1, 1), "triangle": (1, 0, 1, 0), "diamond": (1, 0, 0, 1)}[shape]
    assert tuple(round(v) for v in (top_mid, top_left, bottom_left, mid_left)) == expected


def test_jitter_is_fixed_per_scene_and_varies_between_scenes(sample):
    reds = [c for s in sample for o, c in zip(s.objects, world.object_colors(s)) if o.color == "red"]
    assert len(set(reds)) > 10
    assert world.object_colors(sample[0]) == world.object_colors(Scene.from_json(sample[0].to_json()))
    assert all(len(world.object_colors(s)) == len(s.objects) for s in sample)


# ----------------------------------------------------------------------------- captions and parsing


def test_canonical_caption_round_trip_and_order(sample):
    for scene in sample:
        text = world.caption(scene)
        assert text == text.lower() and not text.endswith(".")
        d = world.parse(text)
        assert d is not None and d.exact
        assert _objects_of(d) == _scene_objects(scene)
        assert world.caption_correct(text, scene) and world.holds(text, scene)
        by_key = {(o.shape, o.color, o.size): o for o in scene.objects}
        named = [by_key[k] for k in d.objects]
        if len(named) == 2:
            a, b = named
            assert d.relation is not None
            if _left(a, b):
                assert d.relation == (0, "left", 1)
            else:  # read top to bottom only when neither is left of the other
                assert not _left(b, a) and _above(a, b) and d.relation == (0, "above", 1)
        else:
            assert d.relation is None
            assert [(o.x, o.y) for o in named] == sorted((o.x, o.y) for o in named)


def test_paraphrases_are_true_and_varied(sample):
    rng = np.random.default_rng(0)
    seen_relations, seen = set(), set()
    for scene in sample:
        for _ in range(3):
            text = world.paraphrase(scene, rng)
            seen.add(text)
            d = world.parse(text)
            assert d is not None and d.exact, text
            assert _objects_of(d) == _scene_objects(scene)
            assert world.caption_correct(text, scene) and world.holds(text, scene), text
            if d.relation:
                seen_relations.add(d.relation[1])
    assert seen_relations == {"left", "right", "above", "below"}
    assert len(seen) > 1000


def _changed(scene, k, **change):
    objects = list(scene.objects)
    objects[k] = dataclasses.replace(objects[k], **change)
    return Scene(objects, scene.size, scene.background)


def test_caption_correct_rejects_one_changed_attribute(sample):
    rng = np.random.default_rng(1)
    for scene in sample[:200]:
        k = int(rng.integers(len(scene.objects)))
        o = scene.objects[k]
        others = {(p.color, p.shape) for p in scene.objects}
        for field, values in (("color", world.COLORS), ("shape", world.SHAPES), ("size", world.SIZES)):
            for v in values:
                wrong = _changed(scene, k, **{field: v})
                if v == getattr(o, field) or (wrong.objects[k].color, wrong.objects[k].shape) in others:
                    continue
                assert not world.caption_correct(world.caption(wrong), scene)
                assert not world.caption_correct(world.paraphrase(wrong, rng), scene)
        # naming one object fewer or one more is wrong too
        if len(scene.objects) > 1:
            fewer = Scene(scene.objects[:-1], scene.size, scene.background)
            assert not world.caption_correct(world.caption(fewer), scene)
            assert world.holds(world.caption(fewer), scene)


def test_caption_correct_rejects_a_false_relation(sample):
    two = [s for s in sample if len(s.objects) == 2]
    assert len(two) > 50
    for scene in two:
        a, b = scene.objects
        ma, mb = world.mention(a), world.mention(b)
        truth = {"to the left of": _left(a, b), "to the right of": _left(b, a),
                 "above": _above(a, b), "below": _above(b, a)}
        for words, true in truth.items():
            assert world.caption_correct(f"{ma} {words} {mb}", scene) == true
            assert world.holds(f"{ma} {words} {mb}", scene) == true
        assert world.caption_correct(f"{ma} and {mb}", scene)


def test_holds_checks_named_objects_sizes_and_relations(sample):
    for scene in sample[:200]:
        present = {(o.color, o.shape) for o in scene.objects}
        for o in scene.objects:
            assert world.holds(world.mention(o, with_size=False), scene)
            assert world.holds(world.mention(o, with_size=True), scene)
            other_size = "small" if o.size == "large" else "large"
            assert not world.holds(world.mention(dataclasses.replace(o, size=other_size)), scene)
            d = world.parse(world.mention(o, with_size=False))
            assert d.objects == [(o.shape, o.color, None)] and not d.exact
        for color in world.COLORS:
            for shape in world.SHAPES:
                if (color, shape) not in present:
                    assert not world.holds(f"a {color} {shape}", scene)


def test_parse_tolerance_and_rejections():
    d = world.parse("  There are TWO shapes:  a Large red circle   to the left of an orange square. ")
    assert d.objects == [("circle", "red", "large"), ("square", "orange", None)]
    assert d.relation == (0, "left", 1) and not d.exact
    assert world.parse("a red circle, a blue square, and a green triangle").objects[2] == ("triangle", "green", None)
    for bad in ("", "hello", "a red", "a red circle and", "three shapes: a red circle",
                "a red circle to the left of", "a circle", "a red circle! and",
                "a red circle above a blue square and a green circle", "two circles and", "four circles",
                "two red", "a red circle over"):
        assert world.parse(bad) is None, bad
    # the tokenizer's normalisation: final '!', '?', '.' and capitals do not matter
    assert world.parse("A red circle!").objects == [("circle", "red", None)]
    assert world.mention(Obj("circle", "orange", "small", 0.5, 0.5), with_size=False) == "an orange circle"
    assert world.mention(Obj("circle", "orange", "small", 0.5, 0.5)) == "a small orange circle"


def test_near_misses_are_false_and_one_detail_away():
    rng = np.random.default_rng(0)
    for scene in world.scenes("train", 100):
        truth = _scene_objects(scene)
        for kind in ("full", "mention"):
            wrong = world.near_miss(scene, kind, rng)
            assert not world.holds(wrong, scene)
            named = world.parse(wrong).objects
            if kind == "full":  # the scene's objects, one of them changed (or their relation swapped)
                assert len(named) == len(scene.objects) and (truth - Counter(named)).total() <= 1, wrong
            else:
                assert len(named) == 1, wrong


def test_swapped_relation_names_the_same_objects_and_is_false(sample):
    for scene in [s for s in sample if len(s.objects) == 2]:
        swapped = world.swap_relation(scene)
        assert _objects_of(world.parse(swapped)) == _scene_objects(scene)
        assert world.parse(swapped).relation is not None and not world.holds(swapped, scene), swapped


# ----------------------------------------------------------------------------- questions


def _answer(question, objects):
    """An independent reading of docs/world.md's templates; asserts the referent is unique."""
    def one(refs):
        assert len(refs) == 1, question
        return refs[0]

    def obj(color, shape):
        return one([o for o in objects if o.color == color and o.shape == shape])

    if m := re.fullmatch(r"what color is the (?:(small|large) )?(\w+)\?", question):
        size, shape = m.groups()
        return one([o for o in objects if o.shape == shape and size in (None, o.size)]).color
    if m := re.fullmatch(r"what shape is the (\w+) object\?", question):
        return one([o for o in objects if o.color == m[1]]).shape
    if m := re.fullmatch(r"what size is the (\w+) (\w+)\?", question):
        return obj(m[1], m[2]).size
    if question == "how many shapes are there?":
        return COUNTS[len(objects)]
    if m := re.fullmatch(r"how many (\w+) shapes are there\?", question):
        return COUNTS[sum(o.color == m[1] for o in objects)]
    if m := re.fullmatch(r"how many (\w+)s are there\?", question):
        return COUNTS[sum(o.shape == m[1] for o in objects)]
    if m := re.fullmatch(r"is there (a|an) (\w+) (\w+)\?", question):
        assert m[1] == ("an" if m[2][0] in "aeiou" else "a")
        return "yes" if any(o.color == m[2] and o.shape == m[3] for o in objects) else "no"
    if m := re.fullmatch(r"is the (\w+) (\w+) (left of|above) the (\w+) (\w+)\?", question):
        a, b = obj(m[1], m[2]), obj(m[4], m[5])
        return "yes" if (_left if m[3] == "left of" else _above)(a, b) else "no"
    if m := re.fullmatch(r"what shape is left of the (\w+) (\w+)\?", question):
        ref = obj(m[1], m[2])
        return one([o for o in objects if _left(o, ref)]).shape
    raise AssertionError(f"not a docs/world.md template: {question!r}")


def test_answers_agree_with_the_scene(sample):
    rng = np.random.default_rng(2)
    seen = Counter()
    for scene in sample:
        for qtype in world.question_types(scene):
            for _ in range(2):
                question, answer, got_type = world.sample_question(scene, rng, qtype)
                assert got_type == qtype and answer in world.all_answers()
                assert _answer(question, scene.objects) == answer, (question, scene.to_dict())
                seen[qtype] += 1
        question, answer, qtype = world.sample_question(scene, rng)
        assert _answer(question, scene.objects) == answer
    assert set(seen) == set(world.QUESTION_TYPES)


def test_impossible_question_types_are_refused():
    one = Scene([Obj("circle", "red", "small", 0.5, 0.5)])
    assert "relation" not in world.question_types(one)
    with pytest.raises(ValueError):
        world.sample_question(one, np.random.default_rng(0), "relation")
    with pytest.raises(ValueError):
        world.sample_question(one, np.random.default_rng(0), "weather")
    reds = Scene([Obj("circle", "red", "small", 0.2, 0.2), Obj("square", "red", "small", 0.8, 0.8)])
    assert "shape" not in world.question_types(reds)


def test_yes_no_balance_and_no_held_out_text_outside_novel():
    rng = np.random.default_rng(3)
    train = world.scenes("train", 2000)
    exist = [world.sample_question(s, rng, "exist") for s in train]
    assert abs(sum(a == "yes" for _, a, _ in exist) / len(exist) - 0.5) < 0.03
    relation = [world.sample_question(s, rng, "relation") for s in train if len(s.objects) > 1]
    yes_no = [a for _, a, _ in relation if a in ("yes", "no")]
    assert len(yes_no) > 600 and abs(yes_no.count("yes") / len(yes_no) - 0.5) < 0.05
    held = [f"{c} {s}" for c, s in world.HELD_OUT]
    for q, _, _ in exist:
        assert not any(h in q for h in held), q
    novel = world.scenes("novel", 300)
    novel_exist = [world.sample_question(s, rng, "exist")[0] for s in novel]
    assert any(h in q for q in novel_exist for h in held)


def test_vocabulary_covers_exactly_what_the_generator_says(sample):
    rng = np.random.default_rng(4)
    texts = list(world.answer_set())
    for scene in sample:
        texts.append(world.caption(scene))
        texts += [world.paraphrase(scene, rng, synonyms=k % 2 == 1) for k in range(4)]
        texts += [world.count_phrase(scene, rng), world.near_miss(scene, "count", rng)]
        texts += [world.mention(o, w) for o in scene.objects for w in (True, False)]
        texts += [world.sample_question(scene, rng, t)[0] for t in world.question_types(scene) for _ in range(3)]
        texts += [normalise(q) for f in world.FAMILIES[1:]
                  for q, _ in filter(None, [world.sample_phrased(scene, rng, f) for _ in range(2)])]
    used = {w for t in texts for w in world.words(t)}
    vocab = world.vocabulary()
    assert vocab == sorted(set(vocab)) and all(w == w.lower() for w in vocab)
    assert used <= set(vocab), used - set(vocab)
    assert set(vocab) <= used, set(vocab) - used  # no stale words
    assert world.words("A red circle, and a blue square?") == [
        "a", "red", "circle", ",", "and", "a", "blue", "square", "?"]


# ----------------------------------------------------------------------------- command line


def test_cli_writes_pngs_and_jsonl(tmp_path, capsys):
    from PIL import Image

    from vlp.__main__ import main

    out = tmp_path / "scenes"
    assert main(["world", "--split", "novel", "--n", "3", "--out", str(out), "--size", "96", "--start", "5"]) == 0
    assert str(out) in capsys.readouterr().out
    lines = (out / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for index, line in zip(range(5, 8), lines):
        record = json.loads(line)
        assert record["file"] == f"{index:05d}.png"
        scene = Scene.from_dict(record["scene"])
        assert scene.objects == world.sample_scene("novel", index).objects and scene.size == 96
        assert record["caption"] == world.caption(scene)
        assert len(record["questions"]) == 3
        for q in record["questions"]:
            assert _answer(q["question"], scene.objects) == q["answer"]
        png = np.asarray(Image.open(out / record["file"]))
        assert png.shape == (96, 96, 3) and np.array_equal(png, np.asarray(world.render(scene)))


@pytest.mark.parametrize("args", [["--split", "dev"], ["--n", "0"], ["--size", "-4"], ["--start", "x"], []])
def test_cli_rejects_bad_arguments(tmp_path, args):
    from vlp.__main__ import main

    argv = ["world", *args] + (["--out", str(tmp_path)] if args else [])
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
