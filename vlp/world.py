"""Shapes World v1: the scene generator, renderer, captioner, parser and question maker.

The data contract is shared/WORLD.md. A scene is a few coloured shapes on a light background,
described by a small JSON dict; everything here (pixels, captions, questions, answers) is a pure
function of that dict, so every answer the model gives can be checked.

    scene = sample_scene("train", 0)        # the same scene on every run
    image = render(scene)                   # 64x64 RGB PIL image
    caption(scene)                          # 'a large red circle to the left of a small blue square'
    sample_question(scene, rng)             # ('what color is the square?', 'blue', 'color')
    caption_correct(text, scene)            # WORLD.md's rule for judging a caption
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
SPLITS = ("train", "val", "test", "novel")
QUESTION_TYPES = ("color", "shape", "size", "count", "exist", "relation")
COUNT_WORDS = ("zero", "one", "two", "three")

COLOR_RGB = {
    "red": (215, 45, 45),
    "green": (45, 160, 70),
    "blue": (45, 85, 215),
    "yellow": (230, 195, 35),
    "purple": (135, 65, 175),
    "orange": (240, 130, 35),
}
# Side of an object's bounding box over the canvas side, per size word.
SIDE_RANGE = {"small": (0.16, 0.20), "large": (0.28, 0.34)}
# (colour, shape) pairs that only the novel split contains.
HELD_OUT = frozenset({("purple", "triangle"), ("orange", "circle"), ("green", "diamond"), ("yellow", "square")})

MAX_OBJECTS = 3
GAP = 0.03  # least gap between two bounding boxes, fraction of the canvas
RELATION_DISTANCE = 0.10  # A is left of B when A.x < B.x - 0.10 (above: same with y)
CLEAR = 0.02  # generated scenes keep every |dx|, |dy| this far from 0.10: no borderline relations
JITTER = 12  # per-channel colour jitter, ± this much
SUPERSAMPLE = 4  # draw at 4x and average down: anti-aliasing
DEFAULT_BACKGROUND = (235, 235, 235)
_SEED = 1  # Shapes World version; the seed of every split starts with it
_EPS = 1e-9  # JSON holds thousandths; compare geometry with a little slack


# ----------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Obj:
    """One shape. `x`, `y` are its centre as fractions of the canvas (y grows downwards)."""

    shape: str  # one of SHAPES
    color: str  # one of COLORS
    size: str  # "small" or "large"
    x: float
    y: float
    scale: float | None = None  # exact box side / canvas side; None: the middle of the size's range

    @property
    def side(self) -> float:
        """Side of the bounding box, as a fraction of the canvas."""
        if self.scale is not None:
            return self.scale
        lo, hi = SIDE_RANGE[self.size]
        return (lo + hi) / 2

    def box(self) -> tuple[float, float, float, float]:
        """Bounding box (left, top, right, bottom) as fractions of the canvas."""
        h = self.side / 2
        return (self.x - h, self.y - h, self.x + h, self.y + h)

    def to_dict(self) -> dict:
        d = {"shape": self.shape, "color": self.color, "size": self.size, "x": self.x, "y": self.y}
        if self.scale is not None:
            d["scale"] = self.scale
        return d


@dataclass
class Scene:
    """A scene as in WORLD.md. Build one with `from_dict` to have it checked; direct
    construction is unchecked (call `validate()`)."""

    objects: list[Obj]
    size: int = 64  # canvas side in pixels
    background: tuple[int, int, int] = DEFAULT_BACKGROUND

    def to_dict(self) -> dict:
        return {"size": self.size, "background": list(self.background),
                "objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        """Build and validate a scene; `size`, `background` and each object's `scale` are optional.

        Raises:
            ValueError: one sentence naming what breaks WORLD.md's contract.
        """
        if not isinstance(d, dict):
            raise ValueError(f"A scene must be a JSON object, got {type(d).__name__}.")
        _no_unknown_keys(d, {"size", "background", "objects"}, "the scene")
        if not isinstance(d.get("objects"), list):
            raise ValueError("A scene needs an 'objects' list.")
        objects = [_obj_from_dict(o, i) for i, o in enumerate(d["objects"])]
        background = d.get("background", DEFAULT_BACKGROUND)
        if (not isinstance(background, (list, tuple)) or len(background) != 3
                or not all(_is_int(c) and 0 <= c <= 255 for c in background)):
            raise ValueError(f"background must be three integers in 0..255, got {background!r}.")
        scene = cls(objects, d.get("size", 64), tuple(int(c) for c in background))
        scene.validate()
        return scene

    def validate(self) -> None:
        """Raise ValueError (one sentence) unless the scene keeps WORLD.md's contract."""
        if not _is_int(self.size) or not 1 <= self.size <= 4096:
            raise ValueError(f"size must be a whole number of pixels in 1..4096, got {self.size!r}.")
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise ValueError(f"A scene holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}.")
        for i, o in enumerate(self.objects):
            for name, value, allowed in (("shape", o.shape, SHAPES), ("color", o.color, COLORS),
                                         ("size", o.size, SIZES)):
                if value not in allowed:
                    raise ValueError(f"objects[{i}] has unknown {name} {value!r}; "
                                     f"expected one of {', '.join(allowed)}.")
            if o.scale is not None:
                lo, hi = SIDE_RANGE[o.size]
                if not lo - _EPS <= o.scale <= hi + _EPS:
                    raise ValueError(f"objects[{i}] is {o.size}, so its scale must be in {lo}..{hi}, got {o.scale}.")
            h = o.side / 2
            if not (h - _EPS <= o.x <= 1 - h + _EPS and h - _EPS <= o.y <= 1 - h + _EPS):
                raise ValueError(f"objects[{i}] ({mention(o)}) sticks out of the canvas: its x and y "
                                 f"must lie in {h:.3f}..{1 - h:.3f}.")
        for (i, a), (j, b) in itertools.combinations(enumerate(self.objects), 2):
            if (a.color, a.shape) == (b.color, b.shape):
                raise ValueError(f"objects[{i}] and objects[{j}] are both {a.color} {a.shape}s; "
                                 "no two objects may share colour and shape.")
            if not _separated(a, b):
                raise ValueError(f"objects[{i}] and objects[{j}] overlap or are closer than {GAP} of the canvas.")

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.from_dict(json.loads(text))

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> Scene:
        return cls.from_json(Path(path).read_text())


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _no_unknown_keys(d: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where} has unknown key {unknown[0]!r}; expected only {', '.join(sorted(known))}.")


def _obj_from_dict(d, i: int) -> Obj:
    if not isinstance(d, dict):
        raise ValueError(f"objects[{i}] must be a JSON object, got {type(d).__name__}.")
    _no_unknown_keys(d, {"shape", "color", "size", "x", "y", "scale"}, f"objects[{i}]")
    missing = [k for k in ("shape", "color", "size", "x", "y") if k not in d]
    if missing:
        raise ValueError(f"objects[{i}] is missing {missing[0]!r}.")
    for k in ("x", "y") + (("scale",) if d.get("scale") is not None else ()):
        if not _is_number(d[k]):
            raise ValueError(f"objects[{i}].{k} must be a number, got {d[k]!r}.")
    scale = d.get("scale")
    return Obj(d["shape"], d["color"], d["size"], float(d["x"]), float(d["y"]),
               None if scale is None else float(scale))


def _separated(a: Obj, b: Obj) -> bool:
    """Whether the two bounding boxes keep at least GAP between them along x or y."""
    need = (a.side + b.side) / 2 + GAP - _EPS
    return abs(a.x - b.x) >= need or abs(a.y - b.y) >= need


def left_of(a: Obj, b: Obj) -> bool:
    """WORLD.md: A is left of B when A.x < B.x - 0.10."""
    return a.x < b.x - RELATION_DISTANCE


def above(a: Obj, b: Obj) -> bool:
    """WORLD.md: A is above B when A.y < B.y - 0.10 (y grows downwards)."""
    return a.y < b.y - RELATION_DISTANCE


RELATIONS = {
    "left": left_of,
    "right": lambda a, b: left_of(b, a),
    "above": above,
    "below": lambda a, b: above(b, a),
}


# ----------------------------------------------------------------------------- sampling


def _rng(split: str, index: int, stream: int = 0) -> np.random.Generator:
    # Entropy (version, split, index, stream): distinct splits never share a seed.
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    if not _is_int(index) or index < 0:
        raise ValueError(f"A scene index must be a non-negative integer, got {index!r}.")
    return np.random.default_rng([_SEED, SPLITS.index(split), int(index), stream])


_ALL_PAIRS = [(c, s) for c in COLORS for s in SHAPES]  # a list, not a set: fixed order, fixed scenes
_SEEN_PAIRS = [p for p in _ALL_PAIRS if p not in HELD_OUT]
_HELD_OUT_PAIRS = [p for p in _ALL_PAIRS if p in HELD_OUT]


def sample_scene(split: str, index: int) -> Scene:
    """The scene number `index` of `split`: the same on every run, on every machine.

    1 to 3 objects (uniform), distinct colour-shape pairs, uniform sizes and positions with
    boxes inside the canvas and GAP apart, by rejection. Every pairwise |dx| and |dy| stays
    CLEAR away from the 0.10 relation threshold, so relations are never borderline.
    train/val/test never hold a HELD_OUT pair; every novel scene holds at least one.
    """
    rng = _rng(split, index)
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    if split == "novel":
        first = _HELD_OUT_PAIRS[rng.integers(len(_HELD_OUT_PAIRS))]
        rest = [p for p in _ALL_PAIRS if p != first]
        pairs = [first] + [rest[k] for k in rng.choice(len(rest), n - 1, replace=False)]
        pairs = [pairs[k] for k in rng.permutation(n)]  # the held-out object is not always first
    else:
        pairs = [_SEEN_PAIRS[k] for k in rng.choice(len(_SEEN_PAIRS), n, replace=False)]
    while True:  # always ends: even three large shapes fit, two rows of two
        sizes = [SIZES[k] for k in rng.integers(0, len(SIZES), n)]
        scales = [_sample_scale(rng, s) for s in sizes]
        for _ in range(50):
            objects = _place(rng, pairs, sizes, scales)
            if objects is not None:
                base = int(rng.integers(206, 245))  # channels in 200..250, within 12 of each other
                background = tuple(base + int(d) for d in rng.integers(-6, 7, 3))
                return Scene(objects, 64, background)


def _sample_scale(rng: np.random.Generator, size: str) -> float:
    lo, hi = SIDE_RANGE[size]
    return int(rng.integers(round(lo * 1000), round(hi * 1000) + 1)) / 1000


def _place(rng, pairs, sizes, scales) -> list[Obj] | None:
    """Place objects one by one, retrying each spot a few times; None when one finds no room."""
    placed: list[Obj] = []
    for (color, shape), size, scale in zip(pairs, sizes, scales):
        lo = math.ceil(scale * 500 - _EPS)  # positions are thousandths that keep the box inside
        hi = math.floor(1000 - scale * 500 + _EPS)
        for _ in range(30):
            x, y = rng.integers(lo, hi + 1, 2) / 1000
            obj = Obj(shape, color, size, float(x), float(y), scale)
            if all(_separated(obj, p) and _clear(obj, p) for p in placed):
                placed.append(obj)
                break
        else:
            return None
    return placed


def _clear(a: Obj, b: Obj) -> bool:
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    return abs(dx - RELATION_DISTANCE) >= CLEAR and abs(dy - RELATION_DISTANCE) >= CLEAR


def scenes(split: str, n: int, start: int = 0) -> list[Scene]:
    """Scenes `start .. start + n - 1` of `split`."""
    return [sample_scene(split, i) for i in range(start, start + n)]


# ----------------------------------------------------------------------------- drawing


def object_colors(scene: Scene) -> list[tuple[int, int, int]]:
    """Each object's jittered RGB. The jitter comes from a hash of the scene's objects and
    background (not its pixel size), so a scene always draws the same, at any size."""
    key = json.dumps({"background": list(scene.background), "objects": [o.to_dict() for o in scene.objects]},
                     sort_keys=True).encode()
    digest = hashlib.blake2b(key, digest_size=64).digest()  # 3 bytes per object, up to 21 objects
    colors = []
    for k, obj in enumerate(scene.objects):
        jitter = [digest[(3 * k + c) % len(digest)] % (2 * JITTER + 1) - JITTER for c in range(3)]
        colors.append(tuple(min(255, max(0, v + j)) for v, j in zip(COLOR_RGB[obj.color], jitter)))
    return colors


def render(scene: Scene, size: int | None = None) -> Image.Image:
    """Draw `scene` as a `size` x `size` RGB image (default: `scene.size`), anti-aliased."""
    size = scene.size if size is None else size
    if not _is_int(size) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels, got {size!r}.")
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), tuple(scene.background))
    draw = ImageDraw.Draw(image)
    for obj, rgb in zip(scene.objects, object_colors(scene)):
        # The box in supersampled pixels; the shape covers [x0, x1) x [y0, y1).
        x0, y0, x1, y1 = (v * big for v in obj.box())
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=rgb)
        elif obj.shape == "square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=rgb)
        elif obj.shape == "triangle":
            draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
        elif obj.shape == "diamond":
            draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb)
        else:
            raise ValueError(f"Unknown shape {obj.shape!r}; expected one of {', '.join(SHAPES)}.")
    return image.reduce(SUPERSAMPLE)  # box filter: each output pixel averages 4x4


def render_array(scenes: list[Scene], size: int = 64) -> np.ndarray:
    """Render scenes into one uint8 array (N, size, size, 3)."""
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for k, scene in enumerate(scenes):
        out[k] = np.asarray(render(scene, size))
    return out


# ----------------------------------------------------------------------------- captions

_INTROS = ("there is", "there are", "a picture of", "an image of", "a scene with", "this image shows")
_REL_WORDS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def mention(obj: Obj, with_size: bool = True) -> str:
    """'a large red circle' (with_size) or 'a red circle'; 'an orange circle' keeps English."""
    words = ([obj.size] if with_size else []) + [obj.color, obj.shape]
    return f"{_article(words[0])} {' '.join(words)}"


def _join(parts: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _by_x(objects: list[Obj]) -> list[Obj]:
    return sorted(objects, key=lambda o: (o.x, o.y))


def caption(scene: Scene) -> str:
    """The canonical caption of WORLD.md.

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


def paraphrase(scene: Scene, rng: np.random.Generator) -> str:
    """A random true description naming every object with its size: any true relation
    ('left', 'right', 'above', 'below') or any order joined by 'and', behind an optional
    intro ('a picture of ...') and count ('two shapes: ...'). It parses back exactly."""
    objects = list(scene.objects)
    if len(objects) == 2:
        options = [f"{mention(a)} and {mention(b)}" for a, b in itertools.permutations(objects)]
        for a, b in itertools.permutations(objects):
            options += [f"{mention(a)} {_REL_WORDS[r]} {mention(b)}" for r, test in RELATIONS.items() if test(a, b)]
        body = options[rng.integers(len(options))]
    else:
        body = _join([mention(objects[k]) for k in rng.permutation(len(objects))])
    n = len(objects)
    if rng.random() < 0.25 and n < len(COUNT_WORDS):
        body = f"{COUNT_WORDS[n]} shape{'s' if n > 1 else ''}: {body}"
    intro = rng.integers(len(_INTROS) + 2)  # bare text twice as often as each intro
    if intro < len(_INTROS):
        word = _INTROS[intro]
        if word.startswith("there"):
            word = "there is" if n == 1 else "there are"
        body = f"{word} {body}"
    return body


# ----------------------------------------------------------------------------- parsing


@dataclass
class Description:
    """What a text says about a scene.

    objects: (shape, color, size or None) per named object, in the text's order.
    relation: (i, rel, j) for 'objects[i] rel objects[j]', rel in RELATIONS; or None.
    exact: True when the text reads as a whole-scene description, i.e. every object names its
        size (captions and paraphrases always do); 'a red circle' is a partial mention.
        'a large red circle' is exact: it is the caption of a one-object scene.
    """

    objects: list[tuple[str, str, str | None]]
    relation: tuple[int, str, int] | None
    exact: bool


def words(text: str) -> list[str]:
    """Lower-case word tokens; each punctuation mark (',', '?', ':', '.') is its own token."""
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


_INTRO_TOKENS = [tuple(p.split()) for p in _INTROS]
_REL_TOKENS = {tuple(p.split()): r for r, p in _REL_WORDS.items()} | {("left", "of"): "left", ("right", "of"): "right"}


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
    if i < len(tokens) and tokens[i] in SIZES:
        size, i = tokens[i], i + 1
    if i + 1 < len(tokens) and tokens[i] in COLORS and tokens[i + 1] in SHAPES:
        return (tokens[i + 1], tokens[i], size), i + 2
    return None, i


def parse(text: str) -> Description | None:
    """Read a caption, paraphrase, mention or query; None when it is not one.

    Grammar: [intro] [count 'shape(s)' [':']] OBJ ( REL OBJ | ((',' | 'and' | ', and') OBJ)* ),
    OBJ = 'a'|'an' [size] color shape. Case, spacing and a final full stop do not matter.
    A relation is read only between two objects; a stated count must match the objects named.
    """
    tokens = words(text)
    if tokens and tokens[-1] == ".":
        tokens.pop()
    i = 0
    intro = _match(tokens, i, _INTRO_TOKENS)
    i += len(intro) if intro else 0
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
    if exact and len(d.objects) != len(objects):
        return False
    for chosen in itertools.permutations(objects, len(d.objects)):
        if all(o.shape == shape and o.color == color and (o.size == size or (size is None and not exact))
               for (shape, color, size), o in zip(d.objects, chosen)):
            if d.relation is None or RELATIONS[d.relation[1]](chosen[d.relation[0]], chosen[d.relation[2]]):
                return True
    return False


def caption_correct(text: str, scene: Scene) -> bool:
    """WORLD.md's rule: the text parses back to exactly the scene's objects (shape, colour,
    size) and any relation it states is true."""
    d = parse(text)
    return d is not None and _satisfied(d, scene, exact=True)


def holds(text: str, scene: Scene) -> bool:
    """Whether the scene holds what the text names: each named object (with its size when
    given) and the stated relation. The retrieval criterion; other objects may be present."""
    d = parse(text)
    return d is not None and _satisfied(d, scene, exact=False)


# ----------------------------------------------------------------------------- questions

# The templates of WORLD.md; {a} is 'a' or 'an', so the exist question reads as English.
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
        absent = [p for p in _ALL_PAIRS if p not in present and (novel or p not in HELD_OUT)]
        # Half the time a near miss, sharing a colour or a shape with a present object.
        near = [p for p in absent if any(p[0] == q[0] or p[1] == q[1] for q in present)]
        (color, shape), answer = _pick(rng, near if near and rng.random() < 0.5 else absent), "no"
    return Q_EXIST.format(a=_article(color), color=color, shape=shape), answer


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
        ValueError: qtype is unknown, or the scene has no such question (e.g. 'relation' with
            one object, 'shape' when no colour is unique).
    """
    if qtype is None:
        qtype = _pick(rng, question_types(scene))
    elif qtype not in QUESTION_TYPES:
        raise ValueError(f"Unknown question type {qtype!r}; expected one of {', '.join(QUESTION_TYPES)}.")
    elif not _possible(scene, qtype):
        raise ValueError(f"This scene has no {qtype} question with a unique referent.")
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
    """Every answer a question can have."""
    return list(COLORS + SHAPES + SIZES + COUNT_WORDS + ("yes", "no"))


def vocabulary() -> list[str]:
    """Every token (sorted) of the generator's captions, paraphrases, mentions, questions and
    answers, split as `words` splits them."""
    fixed = [*_INTROS, *_REL_WORDS.values(), "and , :", "an", "shape shapes"]
    fixed += [re.sub(r"\{\w+\}s?", " ", t) for templates in QUESTION_TEMPLATES.values() for t in templates]
    vocab = {w for text in fixed for w in words(text)}
    vocab |= set(all_answers()) | {s + "s" for s in SHAPES}
    return sorted(vocab)


# ----------------------------------------------------------------------------- command line


def _int_in(low: int, high: int):
    """An argparse type: a whole number in low..high."""
    def parse_int(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number in {low}..{high}, got {value}")
        return value
    return parse_int


def add_arguments(parser: argparse.ArgumentParser, command_name: str = "world") -> None:
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split (default: test)")
    parser.add_argument("--n", type=_int_in(1, 1_000_000), default=16, help="how many scenes (default: 16)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files and scenes.jsonl")
    parser.add_argument("--size", type=_int_in(1, 2048), default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--start", type=_int_in(0, 10**9), default=0, help="index of the first scene (default: 0)")


def main(args: argparse.Namespace, command_name: str = "world") -> int:
    """Write scenes start..start+n-1 of a split as DIR/{index:05d}.png and DIR/scenes.jsonl."""
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"vlp {command_name}: --out {out} is a file, not a folder.", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    indices = range(args.start, args.start + args.n)
    with open(out / "scenes.jsonl", "w") as f:
        for index in indices:
            scene = dataclasses.replace(sample_scene(args.split, index), size=args.size)
            name = f"{index:05d}.png"
            render(scene).save(out / name)
            rng = _rng(args.split, index, stream=1)
            types = question_types(scene)
            chosen = [types[k] for k in rng.permutation(len(types))[:3]]  # three different types
            questions = [sample_question(scene, rng, t) for t in chosen]
            record = {"file": name, "split": args.split, "index": index, "scene": scene.to_dict(),
                      "caption": caption(scene),
                      "questions": [{"question": q, "answer": a, "type": t} for q, a, t in questions]}
            f.write(json.dumps(record) + "\n")
    print(f"wrote {args.n} {args.split} scenes to {out}: "
          f"{indices[0]:05d}.png .. {indices[-1]:05d}.png and scenes.jsonl")
    return 0
