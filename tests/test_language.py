"""People's phrasings (vlp's extension of docs/world.md): every family's questions are answered
right, as `world.true_answer` reads them back from their words (not from the generator's
choices); absent things get 'there is no …'; paraphrases, count phrases and their near misses mean what they say; the
tokenizer's normalisation."""
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from vlp import world
from vlp.tokenizer import Tokenizer, normalise
from vlp.world import Obj, Scene
from vlp.world.language import REL_SYNONYMS


def read(question: str, scene: Scene) -> str | None:
    return world.true_answer(scene, question)


@pytest.fixture(scope="module")
def sample():
    return world.scenes("train", 400) + world.scenes("novel", 100)


def test_every_family_is_answered_right(sample):
    rng = np.random.default_rng(0)
    answers, questions = defaultdict(Counter), defaultdict(list)
    for scene in sample:
        for family in world.FAMILIES:
            canonical = world.sample_question(scene, rng)[:2]
            made = world.sample_phrased(scene, rng, family, canonical)
            if made is None:
                continue
            question, answer = made
            assert read(question, scene) == answer, (family, question, scene.to_dict())
            assert answer in world.answer_set()
            answers[family][answer] += 1
            questions[family].append(question)
    assert set(answers) == set(world.FAMILIES)
    # varied answers: every place, both yes and no, every count, absent shapes, colours and pairs
    assert set(answers["where"]) == set(world.WHERE_ANSWERS)
    for family in ("any", "is_there", "relation"):
        assert set(answers[family]) == {"yes", "no"}
    assert set(answers["how_many"]) == set(world.COUNT_WORDS)
    assert len(answers["absent"]) > 25
    asked = [q for q in questions["what_rel"] if "next to" in q]
    assert 0.1 < len(asked) / len(questions["what_rel"]) < 0.4, "'what is next to …' is one relation in five"
    nothing = answers["what_rel"]["nothing"] / sum(answers["what_rel"].values())
    assert 0.05 < nothing < 0.3, "'nothing' is a real answer, but named shapes are most"


def test_relation_questions_ask_every_direction_with_yes_as_often_as_no():
    # drawn as a random pair and a direction, 57 % of the answers were "no", and vlp-tiny learnt
    # to say "no" to "is the … below the …?" (issue 11)
    words = {w: rel for rel, ws in REL_SYNONYMS.items() for w in ws}
    rng, said = np.random.default_rng(0), defaultdict(Counter)
    for scene in world.scenes("train", 4000):
        made = world.sample_phrased(scene, rng, "relation")
        if made is None:  # one object
            continue
        question, answer = made
        said[next(rel for w, rel in words.items() if f" {w} the " in normalise(question))][answer] += 1
    total = sum(sum(answers.values()) for answers in said.values())
    assert set(said) == {"left", "right", "above", "below"}
    for rel, answers in said.items():
        asked = sum(answers.values())
        assert 0.2 < asked / total < 0.3, (rel, asked, total)
        assert 0.45 < answers["yes"] / asked < 0.55, (rel, answers)


def test_an_absent_referent_gets_there_is_no():
    scene = Scene([Obj("circle", "red", "large", 0.25, 0.5), Obj("triangle", "blue", "small", 0.75, 0.5)])
    assert read("What colour is the square?", scene) == "there is no square"
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        question, answer = world.sample_phrased(scene, rng, "absent")
        assert answer.startswith("there is no ") and read(question, scene) == answer, question
        seen.add(answer)
    assert {"there is no square", "there is no diamond", "there is no green shape"} <= seen
    assert "there is no red circle" not in seen and "there is no circle" not in seen


def test_a_relation_with_a_missing_object_gets_there_is_no():
    # "is the red circle below the blue square?" with no blue square: vlp-tiny said "yes" (issue 11)
    rng, asked = np.random.default_rng(2), Counter()
    said = "|".join(sorted((w for ws in REL_SYNONYMS.values() for w in ws), key=len, reverse=True))
    for scene in world.scenes("train", 600):
        made = world.sample_phrased(scene, rng, "absent")
        if made is None:
            continue
        question, answer = made
        relation = re.fullmatch(rf"is the (.+?) ({said}) the (.+)", normalise(question))
        if relation is None:
            asked["alone"] += 1
            continue
        named = [world.true_answer(scene, f"is there a {relation[i]}?") for i in (1, 3)]
        assert sorted(named) == ["no", "yes"], (question, scene.to_dict())  # one there, one missing
        assert answer.startswith("there is no ") and read(question, scene) == answer, question
        asked["missing first" if named[0] == "no" else "missing second"] += 1
        asked[relation[2]] += 1
    total = sum(asked[k] for k in ("alone", "missing first", "missing second"))
    assert 0.2 < (total - asked["alone"]) / total < 0.4, asked  # ABSENT_RELATION_SHARE of them
    assert asked["missing first"] > 50 and asked["missing second"] > 50, asked
    assert all(asked[w] > 5 for w in ("left of", "right of", "above", "below", "under", "over")), asked


def test_a_canonical_relation_turned_round_keeps_its_answer(sample):
    rng, turned = np.random.default_rng(3), Counter()
    for scene in sample:
        if len(scene.objects) < 2:
            continue
        question, answer, _ = world.sample_question(scene, rng, "relation")
        other = world.converse(question)
        if other is None:
            assert question.startswith("what shape is left of"), question
            continue
        assert read(other, scene) == answer, (question, other, scene.to_dict())
        a, b = re.fullmatch(r"is the (\w+ \w+) (?:left of|above) the (\w+ \w+)\?", question).groups()
        assert other.startswith(f"is the {b} ") and other.endswith(f" the {a}?"), (question, other)
        turned[other.split()[4]] += 1
    assert turned["right"] > 50 and turned["below"] > 50, turned
    assert world.converse("is the red circle above the blue square?") == "is the blue square below the red circle?"


def test_a_typed_question_has_one_true_answer_or_none():
    # test-00004: a large red circle bottom left, a small green circle top right
    scene = Scene([Obj("circle", "red", "large", 0.25, 0.75), Obj("circle", "green", "small", 0.75, 0.25)])
    assert read("What's under the red circle", scene) == "nothing"
    assert read("what is over the big red circle?", scene) == "circle"
    assert read("which shape is next to the green thing!", scene) == "circle"
    assert read("What colour is the square?", scene) == "there is no square"
    assert read("is the red circle left of the green circle", scene) == "yes"
    assert read("how many circles can you see?", scene) == "two"
    assert read("where is the little circle in the picture?", scene) == "top right"
    assert read("what color is the circle?", scene) is None  # two circles: no answer is right
    assert read("what color is the dog?", scene) is None  # outside the grammar
    alone = Scene([Obj("square", "blue", "small", 0.5, 0.5)])
    assert read("what is next to the square?", alone) == "nothing"
    assert read("what is left of the square?", alone) == "nothing"


def test_where_is_asked_only_away_from_the_thirds_edges():
    assert world.where(Obj("circle", "red", "small", 0.15, 0.85)) == "bottom left"
    assert world.where(Obj("circle", "red", "small", 0.5, 0.5)) == "middle"
    assert world.where(Obj("circle", "red", "small", 0.5, 0.2)) == "top"
    assert world.where(Obj("circle", "red", "small", 0.35, 0.5)) is None
    assert world.where(Obj("circle", "red", "small", 0.5, 0.65)) is None


def test_held_out_pairs_are_named_only_about_novel_scenes():
    rng = np.random.default_rng(2)
    pattern = re.compile("|".join(rf"\b{c} {s}" for c, s in world.HELD_OUT))
    for scene in world.scenes("train", 300):
        for family in world.FAMILIES[1:]:
            for _ in range(3):
                made = world.sample_phrased(scene, rng, family)
                assert made is None or not pattern.search(" ".join(made).lower()), made
        for kind in ("paraphrase", "count"):
            assert not pattern.search(world.near_miss(scene, kind, rng))


def test_paraphrases_with_synonyms_and_count_phrases_are_true(sample):
    rng = np.random.default_rng(3)
    words = Counter()
    for scene in sample:
        text = world.paraphrase(scene, rng, synonyms=True)
        assert world.caption_correct(text, scene) and world.holds(text, scene), text
        words.update(text.split())
        count = world.count_phrase(scene, rng)
        d = world.parse(count)
        assert d.count is not None and world.holds(count, scene) and not world.caption_correct(count, scene), count
        n, color, shape = d.count
        assert n == sum(color in (None, o.color) and shape in (None, o.shape) for o in scene.objects)
    assert {"big", "little", "tiny", "over", "under", "on"} <= set(words)


def test_near_misses_of_paraphrases_and_counts_are_false(sample):
    rng = np.random.default_rng(4)
    for scene in sample:
        for kind in ("paraphrase", "count"):
            wrong = world.near_miss(scene, kind, rng)
            assert world.parse(wrong) is not None and not world.holds(wrong, scene), (kind, wrong)


def test_synonyms_parse_to_the_canonical_words():
    d = world.parse("There is a big red circle on the left of a tiny blue square.")
    assert d.objects == [("circle", "red", "large"), ("square", "blue", "small")] and d.relation == (0, "left", 1)
    assert world.parse("a little red circle under a blue square").relation == (0, "below", 1)
    assert world.parse("there are two red shapes").count == (2, "red", None)
    assert world.parse("two circles").count == (2, None, "circle")
    scene = Scene([Obj("circle", "red", "large", 0.25, 0.5), Obj("circle", "blue", "small", 0.75, 0.5)])
    assert world.holds("two circles", scene) and not world.holds("one circle", scene)
    assert world.holds("a big red circle left of a little blue circle", scene)
    assert not world.holds("a big red circle over a little blue circle", scene)


def test_the_tokenizer_normalises_case_final_punctuation_and_spelling():
    assert normalise("What Colour is the BIG square?!") == "what color is the big square"
    assert normalise("what's left of the circle.") == "what is left of the circle"
    tok = Tokenizer.from_words(world.vocabulary())
    for typed in ("What colour is the square", "what color is the square!", "what color is the square ?"):
        assert tok.encode(typed) == tok.encode("what color is the square?") and not tok.unknown_words(typed)
    assert tok.unknown_words("What colour is the zebra?") == ["zebra"]
