"""Pictures of attention for people: heatmaps over the image, grids of heads, matrices.

Everything is drawn with matplotlib's object API (`Figure`, no pyplot), which keeps no global
state, so two requests can draw at once. Every function returns an RGB PIL image.

A heatmap is the (grid, grid) attention over the image patches, laid over the image the model
saw, upscaled with nearest-neighbour so its pixels stay sharp; the patch grid is drawn on top,
and a colour bar says what the colours mean.
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

DISPLAY = 384  # side in pixels of the image under a heatmap (the 64-px input shown 6x)
CMAP = "inferno"  # perceptually uniform, readable in grey
MATRIX_CMAP = "viridis"
ALPHA = 0.8  # heatmap opacity over the image where the weight is highest
ALPHA_LOW = 0.15  # … and where it is zero
DPI = 100


def upscale(image: Image.Image, side: int = DISPLAY) -> Image.Image:
    """`image` as a side x side square: nearest-neighbour when enlarging (crisp pixels),
    bicubic when shrinking."""
    if image.size == (side, side):
        return image
    method = Image.NEAREST if max(image.size) <= side else Image.BICUBIC
    return image.convert("RGB").resize((side, side), method)


def _render(fig: Figure) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", bbox_inches="tight", pad_inches=0.08)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _overlay(ax, image: Image.Image, heat: np.ndarray, vmax: float, title: str | None, grid_lines: bool = True):
    """Draw `image` with `heat` (grid, grid) over it on `ax`; returns a colour-bar handle.

    Opacity grows with the weight, so the picture stays visible where attention is low and
    the colour is strongest where it is high."""
    g = heat.shape[0]
    norm = Normalize(vmin=0.0, vmax=vmax)
    cmap = colormaps[CMAP]
    rgba = cmap(norm(heat))
    rgba[..., 3] = ALPHA_LOW + (ALPHA - ALPHA_LOW) * np.clip(norm(heat), 0, 1)
    ax.imshow(np.asarray(upscale(image)), extent=(0, g, g, 0), interpolation="nearest")
    ax.imshow(rgba, extent=(0, g, g, 0), interpolation="nearest")
    if grid_lines and g <= 32:
        for i in range(1, g):
            ax.axhline(i, color="white", lw=0.5, alpha=0.45)
            ax.axvline(i, color="white", lw=0.5, alpha=0.45)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ScalarMappable(norm=norm, cmap=cmap)


def _vmax(*maps: np.ndarray) -> float:
    top = max(float(np.max(m)) for m in maps)
    return top if top > 0 else 1.0


def heatmap(image: Image.Image, heat: np.ndarray, title: str, label: str = "attention weight") -> Image.Image:
    """One heatmap over the image, with a colour bar."""
    heat = np.asarray(heat, dtype=np.float32)
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    artist = _overlay(ax, image, heat, _vmax(heat), None)
    ax.set_title(title, fontsize=11)
    bar = fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label, fontsize=9)
    bar.ax.tick_params(labelsize=8)
    ax.text(0.0, -0.02, f"{heat.shape[0]}×{heat.shape[1]} patches", transform=ax.transAxes, fontsize=8,
            va="top", color="#555")
    return _render(fig)


def panel_grid(image: Image.Image, panels: list[list[np.ndarray]], row_titles: list[str],
               panel_titles: list[list[str]], title: str) -> Image.Image:
    """Rows of heatmaps over the same image (a row may be shorter than the first). Each panel
    has its own scale (one peaked head would otherwise wash out the rest); its largest weight
    is written in its corner."""
    rows, cols = len(panels), max(len(row) for row in panels)
    fig = Figure(figsize=(1.9 * cols + 0.9, 1.9 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    handle = None
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            if c >= len(panels[r]):
                ax.set_axis_off()
                continue
            heat = np.asarray(panels[r][c], dtype=np.float32)
            top = _vmax(heat)
            handle = _overlay(ax, image, heat / top, 1.0, panel_titles[r][c], grid_lines=False)
            ax.text(0.03, 0.04, f"max {top:.2f}", transform=ax.transAxes, fontsize=7, color="white",
                    bbox=dict(facecolor="black", alpha=0.55, pad=1.2, linewidth=0))
            if c == 0:
                ax.set_ylabel(row_titles[r], fontsize=10)
    fig.suptitle(title, fontsize=12)
    bar = fig.colorbar(handle, ax=axes, fraction=0.025, pad=0.01)
    bar.set_label("weight ÷ the panel's largest weight", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return _render(fig)


def matrices(mats: list[np.ndarray], titles: list[str], labels: list[str], title: str,
             xlabel: str = "key word (attended to)", ylabel: str = "query word") -> Image.Image:
    """Square attention matrices side by side with word labels; values written in the cells
    when there are few."""
    n = len(mats)
    size = min(7.0, max(3.6, 0.4 * len(labels) + 1.6))
    fig = Figure(figsize=(size * n + 1.0, size + 0.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    artist = None
    for ax, m, t in zip(axes, mats, titles):
        artist = ax.imshow(m, cmap=MATRIX_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=9)
        ax.set_yticks(range(len(labels)), labels, fontsize=9)
        if t:
            ax.set_title(t, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        if len(labels) <= 14:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    if m[i, j] >= 0.005:
                        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                                color="white" if m[i, j] < 0.6 else "black")
    axes[0].set_ylabel(ylabel, fontsize=9)
    fig.suptitle(title, fontsize=12)
    bar = fig.colorbar(artist, ax=list(axes), fraction=0.05, pad=0.03)
    bar.set_label("attention weight", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return _render(fig)


def message(text: str, width: int = 480, height: int = 120) -> Image.Image:
    """A plain picture holding one sentence: shown where there is nothing to draw."""
    fig = Figure(figsize=(width / DPI, height / DPI))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#444", wrap=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    buf.seek(0)
    return Image.open(buf).convert("RGB")
