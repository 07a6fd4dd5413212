"""People's phrasings (vlp's extension of docs/world.md): every family's questions are answered
right, read back by a reader written here from the specification alone; absent things get
'there is no …'; paraphrases, count phrases and their near misses mean what they say; the
tokenizer's normalisation."""
import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from vlp import world
from vlp.tokenizer import Tokenizer, normalise
from vlp.world import Obj, Scene

SIZES = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
NOUNS = ("shape", "object", "thing", "item")
RELS = {"to the left of": "left", "left of": "left", "on the left of": "left", "to the right of": "right",
        "right of": "right", "on the right of": "right", "above": "above", "over": "above", "below": "below",
        "under": "below"}
REL = "|".join(sorted(RELS, key=len, reverse=True))


def _left(a, b):
    return a.x < b.x - 0.10


def _above(a, b):
    return a.y < b.y - 0.10


TRUE_REL = {"left": _left, "right": lambda a, b: _left(b, a), "above": _above, "below": lambda a, b: _above(b, a)}


def _named(phrase: str):
    """(size, colour, shape) a referring phrase names; None for what it leaves open."""
    size = color = shape = None
    for word in phrase.split():
        if word in SIZES:
            size = SIZES[word]
        elif word in world.COLORS:
            color = word
        elif word.rstrip("s") in world.SHAPES:
            shape = word.rstrip("s")
        else:
            assert word.rstrip("s") in NOUNS, phrase
    return size, color, shape


def _matching(phrase, objects):
    size, color, shape = _named(phrase)
    return [o for o in objects if size in (None, o.size) and color in (None, o.color) and shape in (None, o.shape)]


def _the(phrase, objects):
    """The one object a 'the …' phrase names, or the 'there is no …' answer when none matches."""
    found = _matching(phrase, objects)
    assert len(found) <= 1, f"'the {phrase}' is ambiguous"
    if found:
        return found[0]
    _, color, shape = _named(phrase)
    return "there is no " + " ".join(w for w in (color, shape or "shape") if w)


def _place(o):
    def third(v, words):
        assert min(abs(v - 1 / 3), abs(v - 2 / 3)) >= 0.03, "borderline place"
        return words[0] if v < 1 / 3 else words[2] if v > 2 / 3 else ""
    return " ".join(w for w in (third(o.y, ("top", "", "bottom")), third(o.x, ("left", "", "right"))) if w) or "middle"


def read(question: str, objects) -> str:
    """Answer a question in any family from the scene's objects (the canonical templates too)."""
    q = normalise(question)
    count = lambda phrase: sum(1 for _ in _matching(phrase, objects))  # noqa: E731
    if m := re.fullmatch(r"(?:what|what shape|which shape) is next to the (.+)", q):
        ref = _the(m[1], objects)
        if isinstance(ref, str):
            return ref
        others = sorted((o for o in objects if o is not ref), key=lambda o: (o.x - ref.x) ** 2 + (o.y - ref.y) ** 2)
        if not others:
            return "nothing"
        dist = [((o.x - ref.x) ** 2 + (o.y - ref.y) ** 2) ** 0.5 for o in others]
        assert len(others) == 1 or dist[0] <= 0.6 * dist[1], f"'{q}': no one object is clearly nearest"
        return others[0].shape
    if m := re.fullmatch(rf"(?:what|what shape|which shape) is ({REL}) the (.+)", q):
        ref = _the(m[2], objects)
        if isinstance(ref, str):
            return ref
        others = [o for o in objects if TRUE_REL[RELS[m[1]]](o, ref)]
        assert len(others) <= 1, q
        return others[0].shape if others else "nothing"
    if m := re.fullmatch(rf"is the (.+?) ({REL}) the (.+)", q):
        a, b = _the(m[1], objects), _the(m[3], objects)
        return "yes" if TRUE_REL[RELS[m[2]]](a, b) else "no"
    if m := re.fullmatch(r"(?:what is the color of|what color is|which color is) the (.+)", q):
        ref = _the(m[1], objects)
        return ref if isinstance(ref, str) else ref.color
    if m := (re.fullmatch(r"which (?:shape|object|thing|item) is (\w+)", q)
             or re.fullmatch(r"(?:what shape is|what is) the (\w+ \w+)", q)):
        ref = _the(m[1], objects)
        return ref if isinstance(ref, str) else ref.shape
    if m := (re.fullmatch(r"(?:how big is|what size is) the (.+)", q)
             or re.fullmatch(r"is the (.+) (?:big|large|small|little|tiny) or (?:big|large|small|little|tiny)", q)):
        ref = _the(m[1], objects)
        return ref if isinstance(ref, str) else ref.size
    if m := re.fullmatch(r"how many (.+) (?:are there|are in the picture|are in the image|do you see|can you see)", q):
        return world.COUNT_WORDS[count(m[1])]
    if m := re.fullmatch(r"(?:are there any|is there an?) (.+)", q):
        return "yes" if count(m[1]) else "no"
    if m := re.fullmatch(r"where is the (.+?)(?: in the picture)?", q):
        ref = _the(m[1], objects)
        return ref if isinstance(ref, str) else _place(ref)
    raise AssertionError(f"no reading for {question!r}")


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
            assert read(question, scene.objects) == answer, (family, question, scene.to_dict())
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


def test_an_absent_referent_gets_there_is_no():
    scene = Scene([Obj("circle", "red", "large", 0.25, 0.5), Obj("triangle", "blue", "small", 0.75, 0.5)])
    assert read("What colour is the square?", scene.objects) == "there is no square"
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        question, answer = world.sample_phrased(scene, rng, "absent")
        assert answer.startswith("there is no ") and read(question, scene.objects) == answer, question
        seen.add(answer)
    assert {"there is no square", "there is no diamond", "there is no green shape"} <= seen
    assert "there is no red circle" not in seen and "there is no circle" not in seen


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
