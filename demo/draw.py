"""Pictures of attention for people: heatmaps over the image, grids of heads, matrices.

Drawn with numpy and PIL directly: a heatmap is an array blended over the image, the words are
PIL text, so a picture costs little next to the model (a matplotlib figure spent most of its time
laying out text; `python -m vlp bench load --baseline OLD_CHECKOUT` compares /attention).
matplotlib lends only its colour maps and its DejaVu font. Nothing is shared between calls but
read-only tables, so two requests can draw at once. Every function returns an RGB PIL image.

A heatmap is the (grid, grid) attention over the image patches, laid over the image the model
saw, upscaled with nearest-neighbour so its pixels stay sharp; the patch grid is drawn on top,
and a colour bar says what the colours mean.
"""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

DISPLAY = 384  # side in pixels of the image under a heatmap (the 64-px input shown 6x)
PANEL = 128  # side of one heatmap in a grid of heads (the input shown 2x)
ALPHA = 0.8  # heatmap opacity over the image where the weight is highest
ALPHA_LOW = 0.15  # … and where it is zero
LINE = 0.45  # opacity of the white patch-grid lines
PAD = 12  # margin around a picture, in pixels
BAR = 16  # width of a colour bar
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"  # has → × ÷
GREY = (85, 85, 85)
TICK = 14  # colour-bar ticks and labels: readable on a projector, where the picture is shown larger


def _lookup(name: str) -> np.ndarray:
    """A colour map as a (256, 3) float table: colour i is the weight i / 255."""
    return colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0


HEAT = _lookup("inferno")  # perceptually uniform, readable in grey
MATRIX = _lookup("viridis")


@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT), size)


def upscale(image: Image.Image, side: int = DISPLAY) -> Image.Image:
    """`image` as a side x side square: nearest-neighbour when enlarging (crisp pixels),
    bicubic when shrinking."""
    if image.size == (side, side):
        return image
    method = Image.NEAREST if max(image.size) <= side else Image.BICUBIC
    return image.convert("RGB").resize((side, side), method)


def _nearest(a: np.ndarray, side: int) -> np.ndarray:
    """(g, g, …) → (side, side, …) by nearest neighbour, for any g."""
    rows = np.arange(side) * a.shape[0] // side
    return a[rows][:, rows]


def _colours(table: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] → (…, 3) float colours of `table`."""
    return table[np.rint(np.clip(weights, 0.0, 1.0) * 255).astype(int)]


def _alpha(weight: np.ndarray) -> np.ndarray:
    """The heatmap's opacity at each weight in [0, 1]."""
    return ALPHA_LOW + (ALPHA - ALPHA_LOW) * weight


def background(image: Image.Image) -> tuple[float, float, float]:
    """The colour of the image's border (its median): what most of a heatmap is laid over."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    return tuple(np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]), axis=0))


def overlay(image: Image.Image, heat: np.ndarray, vmax: float, side: int, grid_lines: bool = True) -> Image.Image:
    """`heat` (grid, grid) over `image`, side x side pixels. Opacity grows with the weight, so the
    picture stays visible where attention is low and the colour is strongest where it is high.
    Blended at the image's own resolution, then enlarged: the same picture for a fraction of the work."""
    g = heat.shape[0]
    rgb = image.convert("RGB")
    at = max(rgb.size)
    weight = _nearest(np.clip(np.asarray(heat, dtype=np.float32) / vmax, 0.0, 1.0), at)
    alpha = _alpha(weight)[..., None]
    base = np.asarray(rgb.resize((at, at), Image.NEAREST) if rgb.size != (at, at) else rgb, dtype=np.float32)
    blended = base * (1.0 - alpha) + _colours(HEAT, weight) * alpha
    out = np.array(upscale(Image.fromarray(np.rint(blended).astype(np.uint8)), side))
    if grid_lines and g <= 32:
        lines = [i * side // g for i in range(1, g)]
        out[lines, :] = np.rint(out[lines, :] * (1 - LINE) + 255 * LINE).astype(np.uint8)
        out[:, lines] = np.rint(out[:, lines] * (1 - LINE) + 255 * LINE).astype(np.uint8)
    return Image.fromarray(out)


def _vmax(*maps: np.ndarray) -> float:
    top = max(float(np.max(m)) for m in maps)
    return top if top > 0 else 1.0


def _width(text: str, size: int) -> int:
    return int(np.ceil(font(size).getlength(text)))


def _lines(canvas: Image.Image, lines: list[str], top: int, sizes: tuple[int, ...], left: int = 0,
           width: int | None = None, fill="black") -> int:
    """Draw `lines` centred between `left` and `left + width` from `top` (the first in sizes[0], the
    rest in sizes[-1]); returns the y below them."""
    pen = ImageDraw.Draw(canvas)
    width = canvas.width - left if width is None else width
    for i, line in enumerate(lines):
        size = sizes[min(i, len(sizes) - 1)]
        pen.text((left + (width - _width(line, size)) // 2, top), line, fill=fill, font=font(size))
        top += int(size * 1.35)
    return top


def _title_height(lines: list[str], sizes: tuple[int, ...]) -> int:
    return sum(int(sizes[min(i, len(sizes) - 1)] * 1.35) for i in range(len(lines)))


def _upright(canvas: Image.Image, text: str, x: int, y_centre: int, size: int, fill=GREY) -> None:
    """Write `text` turned 90° (reading upwards), its centre at height `y_centre`, from x."""
    w, h = _width(text, size), int(size * 1.3)
    label = Image.new("L", (w, h), 0)
    ImageDraw.Draw(label).text((0, 0), text, fill=255, font=font(size))
    label = label.rotate(90, expand=True)
    canvas.paste(Image.new("RGB", label.size, fill), (x, y_centre - label.height // 2), label)


def _ticks(vmax: float) -> list[float]:
    return [vmax * i / 4 for i in range(5)]


def _colour_bar(canvas: Image.Image, table: np.ndarray, x: int, top: int, height: int, vmax: float,
                label: str, under: tuple[float, float, float] | None = None) -> None:
    """A vertical colour bar (vmax at the top, 0 at the bottom), its ticks and its label. `under`:
    the colour a heatmap is laid over, blended in as `overlay` does, so the bar shows the colours
    the map shows where the image is plain background."""
    weights = np.linspace(1.0, 0.0, height)
    column = _colours(table, weights)  # (height, 3)
    if under is not None:
        alpha = _alpha(weights)[:, None]
        column = np.asarray(under, dtype=np.float64) * (1.0 - alpha) + column * alpha
    canvas.paste(Image.fromarray(np.rint(np.repeat(column[:, None], BAR, axis=1)).astype(np.uint8)), (x, top))
    pen = ImageDraw.Draw(canvas)
    pen.rectangle((x - 1, top - 1, x + BAR, top + height), outline=GREY)
    widest = 0
    for value in _ticks(vmax):
        y = top + round((1 - value / vmax) * (height - 1))
        text = f"{value:.2f}"
        pen.line((x + BAR, y, x + BAR + 4, y), fill=GREY, width=2)
        pen.text((x + BAR + 6, y), text, fill="black", font=font(TICK), anchor="lm")
        widest = max(widest, _width(text, TICK))
    _upright(canvas, label, x + BAR + 10 + widest, top + height // 2, TICK - 1)


def _bar_width(vmax: float) -> int:
    """Room for a colour bar, its tick labels and its label."""
    return BAR + 10 + max(_width(f"{v:.2f}", TICK) for v in _ticks(vmax)) + TICK + 8


def heatmap(image: Image.Image, heat: np.ndarray, title: str, label: str = "attention weight") -> Image.Image:
    """One heatmap over the image, with a colour bar from 0 to this map's largest weight (its scale
    is written under the map: each map has its own)."""
    heat = np.asarray(heat, dtype=np.float32)
    vmax = _vmax(heat)
    lines = title.split("\n")
    top = PAD + _title_height(lines, (15, 13))
    canvas = Image.new("RGB", (PAD + DISPLAY + 14 + _bar_width(vmax) + PAD, top + DISPLAY + 26 + PAD), "white")
    _lines(canvas, lines, PAD, (15, 13), left=PAD, width=DISPLAY)
    canvas.paste(overlay(image, heat, vmax, DISPLAY), (PAD, top))
    _colour_bar(canvas, HEAT, PAD + DISPLAY + 14, top, DISPLAY, vmax, label, under=background(image))
    ImageDraw.Draw(canvas).text((PAD, top + DISPLAY + 5),
                                f"{heat.shape[0]}×{heat.shape[1]} patches · scale 0 to {vmax:.2f}, this map's largest",
                                fill=GREY, font=font(13))
    return canvas


def panel_grid(image: Image.Image, panels: list[list[np.ndarray]], row_titles: list[str],
               panel_titles: list[list[str | None]], title: str) -> Image.Image:
    """Rows of heatmaps over the same image (a row may be shorter than the first). Each panel
    has its own scale (one peaked head would otherwise wash out the rest); its largest weight
    is written in its corner."""
    cols, gap = max(len(row) for row in panels), 6
    left = PAD + (max(_width(t, 12) for t in row_titles) + 8 if any(row_titles) else 0)
    titled = [any(t for t in titles) for titles in panel_titles]
    lines = title.split("\n")
    top = PAD + _title_height(lines, (15,)) + 4
    heights = [(18 if titled[r] else 0) + PANEL + gap for r in range(len(panels))]
    body = sum(heights) - gap
    canvas = Image.new("RGB", (left + cols * (PANEL + gap) - gap + 14 + _bar_width(1.0) + PAD, top + body + PAD),
                       "white")
    _lines(canvas, lines, PAD, (15,))
    pen = ImageDraw.Draw(canvas)
    y = top
    for r, row in enumerate(panels):
        if titled[r]:
            for c, name in enumerate(panel_titles[r][:len(row)]):
                if name:
                    x = left + c * (PANEL + gap) + (PANEL - _width(name, 13)) // 2
                    pen.text((x, y), name, fill="black", font=font(13))
            y += 18
        pen.text((PAD, y + PANEL // 2), row_titles[r], fill="black", font=font(12), anchor="lm")
        for c, heat in enumerate(row):
            heat = np.asarray(heat, dtype=np.float32)
            peak = _vmax(heat)
            x = left + c * (PANEL + gap)
            canvas.paste(overlay(image, heat / peak, 1.0, PANEL, grid_lines=False), (x, y))
            note = f"max {peak:.2f}"
            pen.rectangle((x + 3, y + PANEL - 20, x + 9 + _width(note, 13), y + PANEL - 3), fill=(40, 40, 40))
            pen.text((x + 6, y + PANEL - 11), note, fill="white", font=font(13), anchor="lm")
        y += PANEL + gap
    _colour_bar(canvas, HEAT, left + cols * (PANEL + gap) - gap + 14, top, body, 1.0,
                "weight ÷ the panel's largest (its 'max')", under=background(image))
    return canvas


def matrix(m: np.ndarray, labels: list[str], title: str, xlabel: str = "key word (attended to)",
           ylabel: str = "query word", columns: list[str] | None = None) -> Image.Image:
    """An attention matrix with word labels (weights in [0, 1]): a row per label, a column per
    `columns` (default: the labels); the values are written in the cells when there are few."""
    columns = labels if columns is None else columns
    n, n_cols = len(labels), len(columns)
    cell = int(np.clip(440 // max(n, n_cols, 1), 20, 48))
    side, width = cell * n, cell * n_cols
    left = PAD + 18 + max(_width(w, 13) for w in labels) + 6
    lines = title.split("\n")
    top = PAD + _title_height(lines, (15, 13)) + 4
    below = max(_width(w, 13) for w in columns) + 8 + 22
    wide = max(left + width + 14 + _bar_width(1.0) + PAD,
               max(_width(line, 15 if i == 0 else 13) for i, line in enumerate(lines)) + 2 * PAD)
    canvas = Image.new("RGB", (wide, top + side + below + PAD), "white")
    _lines(canvas, lines, PAD, (15, 13))
    cells = np.repeat(np.repeat(_colours(MATRIX, np.asarray(m, dtype=np.float64)), cell, 0), cell, 1)
    canvas.paste(Image.fromarray(np.rint(cells).astype(np.uint8)), (left, top))
    pen = ImageDraw.Draw(canvas)
    if max(n, n_cols) <= 14:
        size = max(9, int(cell / 3.4))
        for i in range(n):
            for j in range(n_cols):
                if m[i, j] >= 0.005:
                    pen.text((left + j * cell + cell // 2, top + i * cell + cell // 2), f"{m[i, j]:.2f}",
                             fill="white" if m[i, j] < 0.6 else "black", font=font(size), anchor="mm")
    for i, word in enumerate(labels):
        pen.text((left - 6, top + i * cell + cell // 2), word, fill="black", font=font(13), anchor="rm")
    for j, word in enumerate(columns):
        label = Image.new("L", (_width(word, 13), 17), 0)
        ImageDraw.Draw(label).text((0, 0), word, fill=255, font=font(13))
        label = label.rotate(90, expand=True)  # reads upwards, its end at the matrix
        canvas.paste(Image.new("RGB", label.size, "black"),
                     (left + j * cell + (cell - label.width) // 2, top + side + 6), label)
    xlabel_top = top + side + below - 19
    pen.text((left + (width - _width(xlabel, 13)) // 2, xlabel_top), xlabel, fill=GREY, font=font(13))
    _upright(canvas, ylabel, PAD, top + side // 2, 13)
    _colour_bar(canvas, MATRIX, left + width + 14, top, side, 1.0, "attention weight")
    return canvas


def message(text: str, width: int = 480, height: int = 120) -> Image.Image:
    """A plain picture holding one sentence, wrapped: shown where there is nothing to draw."""
    canvas = Image.new("RGB", (width, height), "white")
    rows = [""]
    for word in text.split():
        wider = f"{rows[-1]} {word}".strip()
        if rows[-1] and _width(wider, 14) > width - 2 * PAD:
            rows.append(word)
        else:
            rows[-1] = wider
    _lines(canvas, rows, (height - _title_height(rows, (14,))) // 2, (14,), fill=(68, 68, 68))
    return canvas
