"""How much an image looks like a Shapes World scene, from its pixels alone.

A scene is a light, flat background with at most three flat shapes on it, so at the 64-px
resolution the model sees, most pixels match the colour of the border and most pixels sit in a
patch of one colour. Photos fail one sign or more: their borders are not light and flat, their
pixels vary. Measured on 400 test and novel scenes, each saved as PNG, JPEG (quality 60), grey
and at 700 px: the lowest shares were 0.63 (background) and 0.62 (flat). Every colour photo of
scikit-image's samples fails (tests/test_world_likeness.py); a black silhouette on white (its
`horse`) passes, and is not far from a scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SIDE = 64  # the model's input size
NEAR = 20  # a pixel within this of the border's colour (each channel) counts as background
FLAT_SPAN = 24  # a pixel whose 3×3 neighbourhood spans less than this (each channel) is flat
LIGHT = 170  # a scene's background is light: each channel of the border's colour at least this
ENOUGH = 0.55  # background and flat shares from here on count as a scene's


@dataclass(frozen=True)
class Likeness:
    score: float  # 1.0 when every sign holds; else the weakest sign's share of ENOUGH (0 when dark)
    background: float  # share of pixels of the border's colour
    flat: float  # share of pixels in a one-coloured 3×3 patch
    light: bool  # the border's colour is light


def likeness(image: Image.Image) -> Likeness:
    """The signs of a Shapes World scene in `image` (any size; read at 64×64 RGB)."""
    a = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    color = np.median(border, axis=0)
    background = float((np.abs(a - color).max(-1) < NEAR).mean())
    windows = np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(0, 1))  # (62, 62, 3, 3, 3)
    span = (windows.max(axis=(-2, -1)) - windows.min(axis=(-2, -1))).max(-1)  # (62, 62)
    flat = float((span < FLAT_SPAN).mean())
    light = bool(color.min() >= LIGHT)
    score = min(1.0, background / ENOUGH, flat / ENOUGH) if light else 0.0
    return Likeness(round(score, 3), round(background, 3), round(flat, 3), light)
