"""The language of Shapes World: captions, paraphrases and mentions, the parser that reads
them back, the rules that judge a text against a scene, and near misses (texts one detail wrong)."""
from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass

import numpy as np

from vlp.tokenizer import normalise
from vlp.world.scene import ALL_PAIRS, COLORS, HELD_OUT, RELATIONS, SHAPES, SIZES, Obj, Scene, above, left_of

COUNT_WORDS = ("zero", "one", "two", "three")
INTROS = ("there is", "there are", "a picture of", "an image of", "a scene with", "this image shows")  # paraphrases
REL_WORDS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
# vlp's extension (docs/world.md): synonyms people use, read by `parse`, said in paraphrases and questions.
SIZE_SYNONYMS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
REL_SYNONYMS = {"left": ("to the left of", "left of", "on the left of"),
                "right": ("to the right of", "right of", "on the right of"),
                "above": ("above", "over"), "below": ("below", "under")}


# ----------------------------------------------------------------------------- captions


def article(word: str) -> str:
    """'an' before a vowel, else 'a'."""
    return "an" if word[0] in "aeiou" else "a"


def mention(obj: Obj, with_size: bool = True) -> str:
    """'a large red circle' (with_size) or 'a red circle'; 'an orange circle' keeps English."""
    words = ([obj.size] if with_size else []) + [obj.color, obj.shape]
    return f"{article(words[0])} {' '.join(words)}"


def _join(parts: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _by_x(objects: list[Obj]) -> list[Obj]:
    return sorted(objects, key=lambda o: (o.x, o.y))


def caption(scene: Scene) -> str:
    """The canonical caption of docs/world.md.

    Two objects: 'A to the left of B' when the left one is left of the other; otherwise
    'A above B' when the upper one is above the other. When neither holds (impossible in a
    valid scene: boxes at least 0.16 wide and GAP apart differ by 0.19 in x or y) it reads
    'A and B', ordered left to right (ties by y). One or three objects: left to right, ties by y.
    """
    objects = scene.objects
    if len(objects) == 2:
        a, b = _by_x(objects)
        if left_of(a, b):
            return f"{mention(a)} to the left of {mention(b)}"
        top, bottom = sorted(objects, key=lambda o: (o.y, o.x))
        if above(top, bottom):
            return f"{mention(top)} above {mention(bottom)}"
    return _join([mention(o) for o in _by_x(objects)])


def with_synonyms(text: str, rng: np.random.Generator) -> str:
    """`text` with each size word and relation phrase replaced by a random synonym
    ('a large red circle to the left of …' → 'a big red circle on the left of …')."""
    out = []
    for token in re.split(r"(to the left of|to the right of|above|below|small|large)", text):
        key = {"small": "small", "large": "large", "to the left of": "left", "to the right of": "right",
               "above": "above", "below": "below"}.get(token)
        options = SIZE_SYNONYMS.get(key) or REL_SYNONYMS.get(key)
        out.append(options[rng.integers(len(options))] if options else token)
    return "".join(out)


def paraphrase(scene: Scene, rng: np.random.Generator, synonyms: bool = False) -> str:
    """A random true description naming every object with its size: any true relation
    ('left', 'right', 'above', 'below') or any order joined by 'and', behind an optional
    intro ('a picture of ...') and count ('two shapes: ...'). It parses back exactly.
    synonyms: also swap size words and relation phrases for synonyms ('big', 'over', 'left of')."""
    objects = list(scene.objects)
    if len(objects) == 2:
        options = [f"{mention(a)} and {mention(b)}" for a, b in itertools.permutations(objects)]
        for a, b in itertools.permutations(objects):
            options += [f"{mention(a)} {REL_WORDS[r]} {mention(b)}" for r, test in RELATIONS.items() if test(a, b)]
        body = options[rng.integers(len(options))]
    else:
        body = _join([mention(objects[k]) for k in rng.permutation(len(objects))])
    n = len(objects)
    if rng.random() < 0.25 and n < len(COUNT_WORDS):
        body = f"{COUNT_WORDS[n]} shape{'s' if n > 1 else ''}: {body}"
    intro = rng.integers(len(INTROS) + 2)  # bare text twice as often as each intro
    if intro < len(INTROS):
        word = INTROS[intro]
        if word.startswith("there"):
            word = "there is" if n == 1 else "there are"
        body = f"{word} {body}"
    return with_synonyms(body, rng) if synonyms else body


def count_phrase(scene: Scene, rng: np.random.Generator, true: bool = True) -> str:
    """'two circles', 'there is one red shape', 'three shapes': how many objects of a colour, of a
    shape or in all the scene holds (exactly); with true False, a wrong count of the same kind."""
    kind = rng.integers(3)
    pick = scene.objects[rng.integers(len(scene.objects))]
    color, shape = (pick.color, None) if kind == 0 else (None, pick.shape) if kind == 1 else (None, None)
    n = sum((color in (None, o.color)) and (shape in (None, o.shape)) for o in scene.objects)
    if not true:
        n = int(rng.choice([k for k in range(1, len(COUNT_WORDS)) if k != n]))
    noun = (shape or "shape") + ("s" if n > 1 else "")
    text = " ".join(w for w in (COUNT_WORDS[n], color, noun) if w)
    intro = rng.integers(3)
    return (("there is " if n == 1 else "there are ") + text) if intro == 0 else text


# ----------------------------------------------------------------------------- parsing


@dataclass
class Description:
    """What a text says about a scene.

    objects: (shape, color, size or None) per named object, in the text's order.
    relation: (i, rel, j) for 'objects[i] rel objects[j]', rel in RELATIONS; or None.
    count: a count phrase ('two circles', 'one red shape'): (n, colour or None, shape or None);
        exactly n such objects are in the scene.
    exact: True when the text reads as a whole-scene description, i.e. every object names its
        size (captions and paraphrases always do); 'a red circle' is a partial mention.
        'a large red circle' is exact: it is the caption of a one-object scene.
    """

    objects: list[tuple[str, str, str | None]]
    relation: tuple[int, str, int] | None
    exact: bool
    count: tuple[int, str | None, str | None] | None = None  # 'two red shapes': (2, 'red', None), no objects


def words(text: str) -> list[str]:
    """Lower-case word tokens; each punctuation mark (',', '?', ':', '.') is its own token."""
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


_INTRO_TOKENS = [tuple(p.split()) for p in INTROS]
_REL_TOKENS = dict(sorted(((tuple(p.split()), r) for r, ps in REL_SYNONYMS.items() for p in ps), key=lambda x: -len(x[0])))
_SIZE_WORDS = {w: size for size, ws in SIZE_SYNONYMS.items() for w in ws}
_PLURALS = {s + "s": s for s in SHAPES}


def _match(tokens: list[str], i: int, phrases) -> tuple | None:
    for phrase in phrases:
        if tuple(tokens[i:i + len(phrase)]) == phrase:
            return phrase
    return None


def _parse_object(tokens: list[str], i: int) -> tuple[tuple[str, str, str | None] | None, int]:
    """Read 'a [size] color shape' at i; (None, i) when it is not there."""
    if i >= len(tokens) or tokens[i] not in ("a", "an"):
        return None, i
    i += 1
    size = None
    if i < len(tokens) and tokens[i] in _SIZE_WORDS:
        size, i = _SIZE_WORDS[tokens[i]], i + 1
    if i + 1 < len(tokens) and tokens[i] in COLORS and tokens[i + 1] in SHAPES:
        return (tokens[i + 1], tokens[i], size), i + 2
    return None, i


def _parse_count(tokens: list[str], i: int) -> tuple[int, str | None, str | None] | None:
    """Read a whole count phrase 'two [red] circles' / 'one [red] shape' at i, else None."""
    rest = tokens[i:]
    if len(rest) not in (2, 3) or rest[0] not in COUNT_WORDS[1:] or (len(rest) == 3 and rest[1] not in COLORS):
        return None
    noun = rest[-1]
    shape = _PLURALS.get(noun, noun if noun in SHAPES else None)
    if shape is None and noun not in ("shape", "shapes"):
        return None
    return COUNT_WORDS.index(rest[0]), rest[1] if len(rest) == 3 else None, shape


def parse(text: str) -> Description | None:
    """Read a caption, paraphrase, mention or query; None when it is not one.

    Grammar: [intro] [count 'shape(s)' [':']] OBJ ( REL OBJ | ((',' | 'and' | ', and') OBJ)* ),
    OBJ = 'a'|'an' [size] color shape; or a count phrase [intro] count [color] (shape | 'shape')['s'].
    Sizes and relations may be synonyms (SIZE_SYNONYMS, REL_SYNONYMS). Case, spacing and final
    punctuation do not matter (`vlp.tokenizer.normalise`). A relation is read only between two
    objects; a stated count must match the objects named.
    """
    tokens = words(normalise(text))
    i = 0
    intro = _match(tokens, i, _INTRO_TOKENS)
    i += len(intro) if intro else 0
    counted = _parse_count(tokens, i)
    if counted is not None:
        return Description([], None, False, counted)
    count = None
    if i + 1 < len(tokens) and tokens[i] in COUNT_WORDS[1:] and tokens[i + 1] in ("shape", "shapes"):
        count, i = COUNT_WORDS.index(tokens[i]), i + 2
        i += 1 if i < len(tokens) and tokens[i] == ":" else 0
    first, i = _parse_object(tokens, i)
    if first is None:
        return None
    objects, relation = [first], None
    rel = _match(tokens, i, _REL_TOKENS)
    if rel:
        second, i = _parse_object(tokens, i + len(rel))
        if second is None:
            return None
        objects.append(second)
        relation = (0, _REL_TOKENS[rel], 1)
    while i < len(tokens) and relation is None:
        j = i + 1 if tokens[i] == "," else i  # separators: ',' or 'and' or ', and'
        j = j + 1 if j < len(tokens) and tokens[j] == "and" else j
        if j == i:
            return None
        nxt, i = _parse_object(tokens, j)
        if nxt is None:
            return None
        objects.append(nxt)
    if i != len(tokens) or (count is not None and count != len(objects)):
        return None
    return Description(objects, relation, all(size is not None for _, _, size in objects))


def _satisfied(d: Description, scene: Scene, exact: bool) -> bool:
    """Whether distinct scene objects match the named ones (sizes required when exact) and
    make the stated relation true; exact also needs no object left unnamed."""
    objects = scene.objects
    if d.count is not None:
        n, color, shape = d.count
        return not exact and n == sum(color in (None, o.color) and shape in (None, o.shape) for o in objects)
    if exact and len(d.objects) != len(objects):
        return False
    for chosen in itertools.permutations(objects, len(d.objects)):
        if all(o.shape == shape and o.color == color and (o.size == size or (size is None and not exact))
               for (shape, color, size), o in zip(d.objects, chosen)):
            if d.relation is None or RELATIONS[d.relation[1]](chosen[d.relation[0]], chosen[d.relation[2]]):
                return True
    return False


def caption_correct(text: str, scene: Scene) -> bool:
    """docs/world.md's rule: the text parses back to exactly the scene's objects (shape, colour,
    size) and any relation it states is true."""
    d = parse(text)
    return d is not None and _satisfied(d, scene, exact=True)


def holds(text: str, scene: Scene) -> bool:
    """Whether the scene holds what the text names: each named object (with its size when
    given) and the stated relation. The retrieval criterion; other objects may be present."""
    d = parse(text)
    return d is not None and _satisfied(d, scene, exact=False)


# ----------------------------------------------------------------------------- near misses


def near_miss(scene: Scene, kind: str, rng: np.random.Generator) -> str:
    """A false text one detail away from a true one: an attribute or the relation changed.

    kind: "full" changes the scene's caption; "mention" changes a mention of one object;
    "paraphrase" writes a paraphrase (with synonyms) of the changed scene; "count" miscounts.
    """
    if kind == "count":
        return count_phrase(scene, rng, true=False)
    for _ in range(20):
        i = rng.integers(len(scene.objects))
        o = scene.objects[i]
        field, values = [("shape", SHAPES), ("color", COLORS), ("size", SIZES)][rng.integers(3)]
        value = values[rng.integers(len(values))]
        changed = dataclasses.replace(o, **{field: value, "scale": None})
        if value == getattr(o, field) or (changed.color, changed.shape) in HELD_OUT:
            continue
        others = [p for j, p in enumerate(scene.objects) if j != i]
        if any((p.color, p.shape) == (changed.color, changed.shape) for p in others):
            continue
        if kind == "mention":
            text = mention(changed, with_size=field == "size" or bool(rng.random() < 0.5))
        elif kind == "paraphrase":
            objects = list(scene.objects)
            objects[i] = changed
            text = paraphrase(dataclasses.replace(scene, objects=objects), rng, synonyms=True)
        else:
            objects = list(scene.objects)
            objects[i] = changed
            text = caption(dataclasses.replace(scene, objects=objects))
            if len(objects) == 2 and rng.random() < 0.3:
                text = swap_relation(scene)
        if not holds(text, scene):
            return text
    # rarely reached: name an object the scene does not hold
    absent = [(c, s) for c, s in ALL_PAIRS
              if (c, s) not in HELD_OUT and not any((o.color, o.shape) == (c, s) for o in scene.objects)]
    color, shape = absent[rng.integers(len(absent))]
    return mention(Obj(shape, color, "small", 0.5, 0.5), with_size=False)


def swap_relation(scene: Scene) -> str:
    """The canonical caption of a two-object scene with its objects in each other's place: a false relation."""
    a, b = sorted(scene.objects, key=lambda o: (o.x, o.y))
    swapped = dataclasses.replace(scene, objects=[dataclasses.replace(a, x=b.x, y=b.y),
                                                  dataclasses.replace(b, x=a.x, y=a.y)])
    return caption(swapped)
