"""Questions about Shapes World scenes: the templates, sampling a question whose referent is
unique, its one-word answer, and the vocabulary of everything the world says."""
from __future__ import annotations

import itertools
import re

import numpy as np

from vlp.errors import BadArgument
from vlp.world.language import COUNT_WORDS, INTROS, REL_WORDS, article, words
from vlp.world.phrasing import phrase_answers, phrasing_words
from vlp.world.scene import ALL_PAIRS, COLORS, HELD_OUT, SHAPES, SIZES, Scene, above, left_of

QUESTION_TYPES = ("color", "shape", "size", "count", "exist", "relation")

# The templates of docs/world.md; {a} is 'a' or 'an', so the exist question reads as English.
Q_COLOR = "what color is the {shape}?"
Q_COLOR_SIZED = "what color is the {size} {shape}?"
Q_SHAPE = "what shape is the {color} object?"
Q_SIZE = "what size is the {color} {shape}?"
Q_COUNT = "how many shapes are there?"
Q_COUNT_COLOR = "how many {color} shapes are there?"
Q_COUNT_SHAPE = "how many {shape}s are there?"
Q_EXIST = "is there {a} {color} {shape}?"
Q_LEFT = "is the {color} {shape} left of the {color2} {shape2}?"
Q_ABOVE = "is the {color} {shape} above the {color2} {shape2}?"
Q_LEFT_WHAT = "what shape is left of the {color} {shape}?"
QUESTION_TEMPLATES = {
    "color": (Q_COLOR, Q_COLOR_SIZED),
    "shape": (Q_SHAPE,),
    "size": (Q_SIZE,),
    "count": (Q_COUNT, Q_COUNT_COLOR, Q_COUNT_SHAPE),
    "exist": (Q_EXIST,),
    "relation": (Q_LEFT, Q_ABOVE, Q_LEFT_WHAT),
}


def _color_candidates(scene: Scene) -> list[tuple[str, str]]:
    objects, out = scene.objects, []
    for o in objects:
        if sum(p.shape == o.shape for p in objects) == 1:
            out.append((Q_COLOR.format(shape=o.shape), o.color))
        if sum(p.shape == o.shape and p.size == o.size for p in objects) == 1:
            out.append((Q_COLOR_SIZED.format(size=o.size, shape=o.shape), o.color))
    return out


def _shape_candidates(scene: Scene) -> list[tuple[str, str]]:
    objects = scene.objects
    return [(Q_SHAPE.format(color=o.color), o.shape) for o in objects if sum(p.color == o.color for p in objects) == 1]


def _size_candidates(scene: Scene) -> list[tuple[str, str]]:
    return [(Q_SIZE.format(color=o.color, shape=o.shape), o.size) for o in scene.objects]


def _pick(rng: np.random.Generator, items: list):
    return items[rng.integers(len(items))]


def _count_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    objects, kind = scene.objects, rng.integers(3)
    if kind == 0:
        return Q_COUNT, COUNT_WORDS[len(objects)]
    # Half the time an attribute the scene shows, so that answers are not mostly 'zero'.
    if kind == 1:
        color = _pick(rng, [o.color for o in objects] if rng.random() < 0.5 else list(COLORS))
        return Q_COUNT_COLOR.format(color=color), COUNT_WORDS[sum(o.color == color for o in objects)]
    shape = _pick(rng, [o.shape for o in objects] if rng.random() < 0.5 else list(SHAPES))
    return Q_COUNT_SHAPE.format(shape=shape), COUNT_WORDS[sum(o.shape == shape for o in objects)]


def _exist_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    present = [(o.color, o.shape) for o in scene.objects]
    if rng.random() < 0.5:
        (color, shape), answer = _pick(rng, present), "yes"
    else:
        # Held-out pairs are named only about scenes that hold one (novel): never in train text.
        novel = any(p in HELD_OUT for p in present)
        absent = [p for p in ALL_PAIRS if p not in present and (novel or p not in HELD_OUT)]
        # Half the time a near miss, sharing a colour or a shape with a present object.
        near = [p for p in absent if any(p[0] == q[0] or p[1] == q[1] for q in present)]
        (color, shape), answer = _pick(rng, near if near and rng.random() < 0.5 else absent), "no"
    return Q_EXIST.format(a=article(color), color=color, shape=shape), answer


def _relation_question(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    objects = scene.objects
    what = []  # (reference, the only object left of it)
    for ref in objects:
        lefts = [o for o in objects if left_of(o, ref)]
        if len(lefts) == 1:
            what.append((ref, lefts[0]))
    if what and rng.random() < 1 / 3:
        ref, other = _pick(rng, what)
        return Q_LEFT_WHAT.format(color=ref.color, shape=ref.shape), other.shape
    want = bool(rng.random() < 0.5)  # the answer first: yes and no in equal measure

    def options(answer: bool) -> list:
        return [(a, b, template) for a, b in itertools.permutations(objects, 2)
                for template, test in ((Q_LEFT, left_of), (Q_ABOVE, above)) if test(a, b) == answer]

    if not options(want):  # only in hand-made scenes with overlapping shapes
        want = not want
    a, b, template = _pick(rng, options(want))
    return template.format(color=a.color, shape=a.shape, color2=b.color, shape2=b.shape), "yes" if want else "no"


def _possible(scene: Scene, qtype: str) -> bool:
    return {"color": lambda: bool(_color_candidates(scene)), "shape": lambda: bool(_shape_candidates(scene)),
            "size": lambda: bool(scene.objects), "count": lambda: True, "exist": lambda: bool(scene.objects),
            "relation": lambda: len(scene.objects) >= 2}[qtype]()


def question_types(scene: Scene) -> list[str]:
    """The question types that have a uniquely referenced question about this scene."""
    return [t for t in QUESTION_TYPES if _possible(scene, t)]


def sample_question(scene: Scene, rng: np.random.Generator, qtype: str | None = None) -> tuple[str, str, str]:
    """A random (question, one-word answer, qtype) whose referent is unique in the scene.

    qtype None picks uniformly among `question_types(scene)`.
    Raises:
        BadArgument: qtype is unknown, or the scene has no such question (e.g. 'relation' with
            one object, 'shape' when no colour is unique).
    """
    if qtype is None:
        qtype = _pick(rng, question_types(scene))
    elif qtype not in QUESTION_TYPES:
        raise BadArgument(f"Unknown question type {qtype!r}; expected one of {', '.join(QUESTION_TYPES)}.")
    elif not _possible(scene, qtype):
        raise BadArgument(f"This scene has no {qtype} question with a unique referent.")
    if qtype == "color":
        question, answer = _pick(rng, _color_candidates(scene))
    elif qtype == "shape":
        question, answer = _pick(rng, _shape_candidates(scene))
    elif qtype == "size":
        question, answer = _pick(rng, _size_candidates(scene))
    elif qtype == "count":
        question, answer = _count_question(scene, rng)
    elif qtype == "exist":
        question, answer = _exist_question(scene, rng)
    else:
        question, answer = _relation_question(scene, rng)
    return question, answer, qtype


def all_answers() -> list[str]:
    """Every answer a canonical question can have: one word each (docs/world.md)."""
    return list(COLORS + SHAPES + SIZES + COUNT_WORDS + ("yes", "no"))


def answer_set() -> list[str]:
    """Every answer any question can have: the canonical one-word answers, then the phrasings'
    ('top left', 'there is no square'; vlp/world/phrasing.py)."""
    return all_answers() + phrase_answers()


def vocabulary() -> list[str]:
    """Every token (sorted) of the generator's captions, paraphrases, mentions, count phrases,
    questions in every phrasing and answers, split as `words` splits them (after the tokenizer's
    normalisation: no capitals, 'color' spelt one way)."""
    fixed = [*INTROS, *REL_WORDS.values(), "and , :", "an", "shape shapes"]
    fixed += [re.sub(r"\{\w+\}s?", " ", t) for templates in QUESTION_TEMPLATES.values() for t in templates]
    vocab = {w for text in fixed for w in words(text)}
    vocab |= set(all_answers()) | {s + "s" for s in SHAPES} | phrasing_words()
    return sorted(vocab)
