"""Shapes World scenes: objects, scenes and their JSON, the relations, and the seeded splits.

A scene is a few coloured shapes on a light background, described by a small JSON dict
(docs/world.md); everything else in `vlp.world` (pixels, captions, questions) is a pure
function of that dict. `sample_scene(split, index)` is the same scene on every run.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlp.errors import BadScene

SHAPES = ("circle", "square", "triangle", "diamond")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
SPLITS = ("train", "val", "test", "novel")
# Side of an object's bounding box over the canvas side, per size word.
SIDE_RANGE = {"small": (0.16, 0.20), "large": (0.28, 0.34)}
# (colour, shape) pairs that only the novel split contains.
HELD_OUT = frozenset({("purple", "triangle"), ("orange", "circle"), ("green", "diamond"), ("yellow", "square")})

MAX_OBJECTS = 3
GAP = 0.03  # least gap between two bounding boxes, fraction of the canvas
RELATION_DISTANCE = 0.10  # A is left of B when A.x < B.x - 0.10 (above: same with y)
CLEAR = 0.02  # generated scenes keep every |dx|, |dy| this far from 0.10: no borderline relations
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
    """A scene as in docs/world.md. Build one with `from_dict` to have it checked; direct
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
            BadScene: one sentence naming what breaks docs/world.md's contract.
        """
        if not isinstance(d, dict):
            raise BadScene(f"A scene must be a JSON object, got {type(d).__name__}.")
        _no_unknown_keys(d, {"size", "background", "objects"}, "the scene")
        if not isinstance(d.get("objects"), list):
            raise BadScene("A scene needs an 'objects' list.")
        objects = [_obj_from_dict(o, i) for i, o in enumerate(d["objects"])]
        background = d.get("background", DEFAULT_BACKGROUND)
        if (not isinstance(background, (list, tuple)) or len(background) != 3
                or not all(is_int(c) and 0 <= c <= 255 for c in background)):
            raise BadScene(f"background must be three integers in 0..255, got {background!r}.")
        scene = cls(objects, d.get("size", 64), tuple(int(c) for c in background))
        scene.validate()
        return scene

    def validate(self) -> None:
        """Raise BadScene (one sentence) unless the scene keeps docs/world.md's contract."""
        if not is_int(self.size) or not 1 <= self.size <= 4096:
            raise BadScene(f"size must be a whole number of pixels in 1..4096, got {self.size!r}.")
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise BadScene(f"A scene holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}.")
        for i, o in enumerate(self.objects):
            for name, value, allowed in (("shape", o.shape, SHAPES), ("color", o.color, COLORS),
                                         ("size", o.size, SIZES)):
                if value not in allowed:
                    raise BadScene(f"objects[{i}] has unknown {name} {value!r}; "
                                     f"expected one of {', '.join(allowed)}.")
            if o.scale is not None:
                lo, hi = SIDE_RANGE[o.size]
                if not lo - _EPS <= o.scale <= hi + _EPS:
                    raise BadScene(f"objects[{i}] is {o.size}, so its scale must be in {lo}..{hi}, got {o.scale}.")
            h = o.side / 2
            if not (h - _EPS <= o.x <= 1 - h + _EPS and h - _EPS <= o.y <= 1 - h + _EPS):
                raise BadScene(f"objects[{i}] (a {o.size} {o.color} {o.shape}) sticks out of the canvas: "
                                 f"its x and y must lie in {h:.3f}..{1 - h:.3f}.")
        for (i, a), (j, b) in itertools.combinations(enumerate(self.objects), 2):
            if (a.color, a.shape) == (b.color, b.shape):
                raise BadScene(f"objects[{i}] and objects[{j}] are both {a.color} {a.shape}s; "
                                 "no two objects may share colour and shape.")
            if not _separated(a, b):
                raise BadScene(f"objects[{i}] and objects[{j}] overlap or are closer than {GAP} of the canvas.")

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


def is_int(v) -> bool:
    """Whether v is a whole number (a bool is not)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _no_unknown_keys(d: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise BadScene(f"{where} has unknown key {unknown[0]!r}; expected only {', '.join(sorted(known))}.")


def _obj_from_dict(d, i: int) -> Obj:
    if not isinstance(d, dict):
        raise BadScene(f"objects[{i}] must be a JSON object, got {type(d).__name__}.")
    _no_unknown_keys(d, {"shape", "color", "size", "x", "y", "scale"}, f"objects[{i}]")
    missing = [k for k in ("shape", "color", "size", "x", "y") if k not in d]
    if missing:
        raise BadScene(f"objects[{i}] is missing {missing[0]!r}.")
    for k in ("x", "y") + (("scale",) if d.get("scale") is not None else ()):
        if not _is_number(d[k]):
            raise BadScene(f"objects[{i}].{k} must be a number, got {d[k]!r}.")
    scale = d.get("scale")
    return Obj(d["shape"], d["color"], d["size"], float(d["x"]), float(d["y"]),
               None if scale is None else float(scale))


def _separated(a: Obj, b: Obj) -> bool:
    """Whether the two bounding boxes keep at least GAP between them along x or y."""
    need = (a.side + b.side) / 2 + GAP - _EPS
    return abs(a.x - b.x) >= need or abs(a.y - b.y) >= need


def left_of(a: Obj, b: Obj) -> bool:
    """docs/world.md: A is left of B when A.x < B.x - 0.10."""
    return a.x < b.x - RELATION_DISTANCE


def above(a: Obj, b: Obj) -> bool:
    """docs/world.md: A is above B when A.y < B.y - 0.10 (y grows downwards)."""
    return a.y < b.y - RELATION_DISTANCE


RELATIONS = {
    "left": left_of,
    "right": lambda a, b: left_of(b, a),
    "above": above,
    "below": lambda a, b: above(b, a),
}


# ----------------------------------------------------------------------------- sampling


def scene_rng(split: str, index: int, stream: int = 0) -> np.random.Generator:
    """The random stream of scene `index` of `split`: stream 0 draws the scene, others what goes with it."""
    # Entropy (version, split, index, stream): distinct splits never share a seed.
    if split not in SPLITS:
        raise BadScene(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    if not is_int(index) or index < 0:
        raise BadScene(f"A scene index must be a non-negative integer, got {index!r}.")
    return np.random.default_rng([_SEED, SPLITS.index(split), int(index), stream])


ALL_PAIRS = [(c, s) for c in COLORS for s in SHAPES]  # a list, not a set: fixed order, fixed scenes
_SEEN_PAIRS = [p for p in ALL_PAIRS if p not in HELD_OUT]
_HELD_OUT_PAIRS = [p for p in ALL_PAIRS if p in HELD_OUT]


def sample_scene(split: str, index: int) -> Scene:
    """The scene number `index` of `split`: the same on every run, on every machine.

    1 to 3 objects (uniform), distinct colour-shape pairs, uniform sizes and positions with
    boxes inside the canvas and GAP apart, by rejection. Every pairwise |dx| and |dy| stays
    CLEAR away from the 0.10 relation threshold, so relations are never borderline.
    train/val/test never hold a HELD_OUT pair; every novel scene holds at least one.
    """
    rng = scene_rng(split, index)
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    if split == "novel":
        first = _HELD_OUT_PAIRS[rng.integers(len(_HELD_OUT_PAIRS))]
        rest = [p for p in ALL_PAIRS if p != first]
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
