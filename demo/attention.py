"""The Attention tab: where the model looks. The maps come from `model.attention` (a
`vlp.attention.AttentionMaps`, computed once per image and text, kept in a small cache shared by
the visitors and in the session); moving a slider only redraws them. The page draws what it
shows: the grid of every head only when asked for.

Layers, heads and words are 1-based here, as a person counts them; head 0 is the mean of the heads.
"""
from __future__ import annotations

import math
import numbers
import threading
from collections import OrderedDict
from dataclasses import dataclass

import gradio as gr
import numpy as np
from PIL import Image

from vlp.attention import AttentionMaps
from vlp.errors import BadArgument
from vlp.limits import check_text

from demo import draw
from demo.inputs import (PRIVATE, QUEUED, QUEUED_PRIVATE, checked_image, domain_note, notice, number_slider,
                         one_message, safe)
from demo.pictures import picture_output
from demo.scenes import pixel_key

MAX_GRID_PANELS = 40  # more layers x (heads + mean) than this: the grid shows one layer at a time
MAPS_KEPT = 16  # (image, text) pairs whose maps the cache keeps: the examples and a few uploads
START = "[start]"  # the hidden token every caption begins from, shown as the text matrix's first column
EXPLAINED = (
    "**How to read these maps.** The vision encoder cuts the image into patches and adds one extra token, the "
    "**class token**, which holds no pixels of its own: it gathers what the image is about from every patch, layer "
    "after layer, and is what the image is summed up by for search and matching. *Vision self-attention* shows how "
    "much the class token reads each patch in one layer (one head, or the mean of them). *Attention rollout* "
    "follows it through all the layers at once: each layer's attention (with the skip connection that keeps half "
    "of a token as it was) multiplied into the next, so it says how much of each patch ends up in the class token. "
    "*Cross-attention* shows the patches the text decoder reads while it writes one word; *text self-attention* "
    "the earlier words (and the hidden start token) each word reads. Each map has its own colour scale, from 0 "
    "to its largest weight, written under it; the colours are laid over the image as the bar beside it shows.")
MAPS_BYTES = 64 * 2**20  # … and at most this much of them (BLIP's ViT-B/16 at 384 px: 12 x 12 x 577² floats, ~190 MB: none)


@dataclass
class AttentionPictures:
    vision: Image.Image  # class token -> patches, one layer, one head or their mean
    grid: Image.Image | None  # every head as a grid; None unless asked for
    rollout: Image.Image  # attention rollout through all layers
    cross: Image.Image  # cross-attention behind one word
    text: Image.Image  # text self-attention, mean over layers and heads


def compute_attention(model, image, text: str = "") -> AttentionMaps:
    """The model's attention maps for the image and a text (empty: the caption it writes)."""
    img = checked_image(image)
    return model.attention(img, _given(text))


def _given(text) -> str | None:
    return check_text(text, "text") if isinstance(text, str) and text.strip() else None


class AttentionCache:
    """The maps of the last (image, text) pairs, found by the image's pixels: showing an example
    again, or the same upload in another tab, costs no model call. At most `size` pairs and
    `budget` bytes of maps (a large model's maps are not kept). Safe to share between requests
    (maps are read, never changed)."""

    def __init__(self, model, size: int = MAPS_KEPT, budget: int = MAPS_BYTES):
        self.model, self.size, self.budget = model, size, budget
        self._maps: OrderedDict[tuple[str, str | None], AttentionMaps] = OrderedDict()
        self._lock = threading.Lock()

    def maps(self, image, text: str = "") -> AttentionMaps:
        img, given = checked_image(image), _given(text)
        key = (pixel_key(img), given)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        maps = self.model.attention(img, given)
        with self._lock:
            self._maps[key] = maps
            while len(self._maps) > self.size or sum(map(_bytes, self._maps.values())) > self.budget:
                self._maps.popitem(last=False)  # the oldest first, the new one last if alone too large
        return maps


def _bytes(maps: AttentionMaps) -> int:
    return sum(a.nbytes for a in (*maps.vision, *maps.cross, *maps.text))


def attention_caption(maps: AttentionMaps, note: str = "") -> str:
    """Markdown: the words behind the maps, and `note` (the model's notice for an image outside what
    it knows, `demo.inputs.domain_note`) under them."""
    return _words_line(maps) + (f"  \n{note}" if note else "")


def _words_line(maps: AttentionMaps) -> str:
    if not maps.tokens:
        return "No text: this model only shows where the image looks."
    return "The words behind the maps: **" + " ".join(maps.tokens) + "**"


def word_choices(maps: AttentionMaps) -> list[tuple[str, int]]:
    """(label, 1-based index) for each word that has cross-attention."""
    if not maps.cross:
        return []
    return [(f"{i}. {w}", i) for i, w in enumerate(maps.tokens, 1)]


def _clamp(value, low: int, high: int, name: str) -> int:
    """`value` as an int in [low, high] (a slider may outlive a smaller model); a value that is
    not a number is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise BadArgument(f"The {name} must be a number from {low} to {high}, got {value!r}.")
    return max(low, min(high, int(value)))


def draw_vision(maps: AttentionMaps, layer: int = 1, head: int = 0) -> Image.Image:
    """Class token → patches in one layer, one head or their mean (head 0)."""
    n_layers, n_heads = len(maps.vision), maps.vision[0].shape[0]
    layer = _clamp(layer, 1, n_layers, "layer")
    head = _clamp(head, 0, n_heads, "head")
    heat = maps.class_to_patches(layer - 1, None if head == 0 else head - 1)
    which = "mean of the heads" if head == 0 else f"head {head} of {n_heads}"
    return draw.heatmap(maps.image, heat, f"Vision self-attention: class token → patches\nlayer {layer} of {n_layers}, {which}")


def heads_depend_on_layer(maps: AttentionMaps) -> bool:
    """True when the grid of heads shows only the chosen layer (too many layers × heads)."""
    return len(maps.vision) * (maps.vision[0].shape[0] + 1) > MAX_GRID_PANELS


def draw_heads(maps: AttentionMaps, layer: int = 1) -> Image.Image:
    """Every head (and their mean) of every layer as a grid, on one colour scale; only the
    chosen layer's heads when there are too many to see (e.g. 12 × 12 in ViT-B)."""
    n_layers, n_heads = len(maps.vision), maps.vision[0].shape[0]
    names = [f"head {h + 1}" for h in range(n_heads)] + ["mean"]
    if not heads_depend_on_layer(maps):  # all layers, a row each
        panels = [[maps.class_to_patches(l, h) for h in range(n_heads)] + [maps.class_to_patches(l)]
                  for l in range(n_layers)]
        return draw.panel_grid(maps.image, panels, [f"layer {l + 1}" for l in range(n_layers)],
                               [names if l == 0 else [None] * len(names) for l in range(n_layers)],
                               "Every head of the vision encoder: class token → patches")
    layer = _clamp(layer, 1, n_layers, "layer")
    heats = [maps.class_to_patches(layer - 1, h) for h in range(n_heads)] + [maps.class_to_patches(layer - 1)]
    per_row = 7
    rows = [heats[i:i + per_row] for i in range(0, len(heats), per_row)]
    titles = [names[i:i + per_row] for i in range(0, len(names), per_row)]
    return draw.panel_grid(maps.image, rows, [""] * len(rows), titles,
                           f"Every head of layer {layer} of {n_layers}: class token → patches")


def draw_rollout(maps: AttentionMaps) -> Image.Image:
    return draw.heatmap(maps.image, maps.rollout(),
                        f"Attention rollout\nclass token through all {len(maps.vision)} layers",
                        label="share of the class token")


def draw_cross(maps: AttentionMaps, word: int = 1) -> Image.Image:
    """Cross-attention behind one word, mean over the decoder's layers and heads."""
    if not maps.cross or not maps.tokens:
        return draw.message("This model reads no text against the image here: no cross-attention.")
    i = _clamp(word, 1, len(maps.tokens), "word") - 1
    layers, heads = len(maps.cross), maps.cross[0].shape[0]
    return draw.heatmap(maps.image, maps.word_to_patches(i),
                        f"Cross-attention behind '{maps.tokens[i]}' (word {i + 1})\nmean of {layers} layers × {heads} heads")


def text_matrix(maps: AttentionMaps) -> tuple[np.ndarray, list[str]]:
    """The text self-attention of the words, mean over layers and heads, with the share of the
    hidden start token (which the maps leave out) as a first column when it has one: (rows that sum
    to 1, the columns' names)."""
    mean = np.mean([t.mean(axis=0) for t in maps.text], axis=0)
    start = np.clip(1.0 - mean.sum(axis=1), 0.0, 1.0)
    if start.max() < 0.001:
        return mean, list(maps.tokens)
    return np.concatenate([start[:, None], mean], axis=1), [START, *maps.tokens]


def draw_text(maps: AttentionMaps) -> Image.Image:
    """The text self-attention of the words as one matrix: mean over layers and heads."""
    if not maps.text or not maps.tokens:
        return draw.message("No text self-attention to show for this model and input.")
    weights, columns = text_matrix(maps)
    title = (f"Text self-attention\nmean of {len(maps.text)} layers × {maps.text[0].shape[0]} heads; "
             "a row: one word reading the others")
    if columns[0] == START:
        title += f"\nand the hidden {START} token it begins from: each row sums to 1"
    return draw.matrix(weights, maps.tokens, title, columns=columns)


def draw_attention(maps: AttentionMaps, layer: int = 1, head: int = 0, all_heads: bool = False,
                   word: int = 1) -> AttentionPictures:
    return AttentionPictures(vision=draw_vision(maps, layer, head), grid=draw_heads(maps, layer) if all_heads else None,
                             rollout=draw_rollout(maps), cross=draw_cross(maps, word), text=draw_text(maps))


def _picture(label: str, elem_id: str, visible: bool = True, height: int | None = None) -> gr.Image:
    """An output image for a drawn figure (its title is in the picture)."""
    return picture_output(gr.Image(label=label, show_label=False, type="pil", format="png", interactive=False,
                                   elem_id=elem_id, buttons=["download", "fullscreen"], visible=visible, height=height))


def _need(maps: AttentionMaps | None) -> AttentionMaps:
    if maps is None:
        raise BadArgument("Press 'Show attention' first.")
    return maps


def build_attention_tab(model, image: gr.Image) -> None:
    layers, heads = model.vision_shape()
    with gr.Tab("Attention", id="attention"):
        if not model.capabilities.attention:
            notice(f"{model.spec} does not show its attention here.")
        with gr.Accordion("What the class token and rollout are", open=False, elem_id="attention-help"):
            gr.Markdown(EXPLAINED)
        with gr.Row():
            text = gr.Textbox(label="Text to explain (empty: the caption the model writes)", scale=3)
            show_btn = gr.Button("Show attention", variant="primary", scale=1, elem_id="attention-btn",
                                 interactive=model.capabilities.attention)
        caption_md = gr.Markdown(elem_id="attention-words")
        with gr.Row():
            layer = number_slider(1, layers, value=layers, step=1, label="Layer")
            head = number_slider(0, heads, value=0, step=1, label="Head (0 = mean of the heads)")
            all_heads = gr.Checkbox(value=False, label="Every head, as a grid")
        with gr.Row():
            vision_img = _picture("Vision self-attention", "vision-map")
            rollout_img = _picture("Attention rollout", "rollout-map")
        grid_img = _picture("Every head", "heads-map", visible=False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=160):
                word = gr.Radio(choices=[], label="A word of the caption: the cross-attention behind it")
            with gr.Column(scale=2):
                cross_img = _picture("Cross-attention behind the word", "cross-map")
        text_img = _picture("Text self-attention", "text-map", height=520)
        maps_state = gr.State(None)

    cache = AttentionCache(model)

    @safe
    def on_show(img, text, layer, head, all_heads):
        maps = cache.maps(img, text)
        p = draw_attention(maps, layer, head, all_heads, 1)
        choices = word_choices(maps)
        words = gr.Radio(choices=choices, value=choices[0][1] if choices else None)
        note = domain_note(model, checked_image(img))
        return p.vision, p.grid, p.rollout, p.cross, p.text, attention_caption(maps, note), words, maps

    def sliders(maps):
        if maps is None:
            return gr.Slider(), gr.Slider()
        return gr.Slider(maximum=len(maps.vision)), gr.Slider(maximum=maps.vision[0].shape[0])

    @safe
    def redraw_vision(maps, layer, head):
        return draw_vision(_need(maps), layer, head)

    @safe
    def redraw_heads(maps, layer, all_heads):
        if not all_heads:
            return gr.Image(None, visible=False)
        return gr.Image(draw_heads(_need(maps), layer), visible=True)

    @safe
    def heads_of_layer(maps, layer, all_heads):
        if not all_heads or maps is None or not heads_depend_on_layer(maps):
            return gr.skip()  # no grid shown, or it holds every layer already
        return draw_heads(maps, layer)

    @safe
    def redraw_cross(maps, word):
        return draw_cross(_need(maps), word)

    shown = [vision_img, grid_img, rollout_img, cross_img, text_img, caption_md, word, maps_state]
    showing = show_btn.click(on_show, [image, text, layer, head, all_heads], shown, api_name="attention",
                             show_progress_on=[vision_img, rollout_img], **QUEUED)
    showing.then(sliders, [maps_state], [layer, head], **PRIVATE).then(
        lambda on: gr.Image(visible=bool(on)), [all_heads], [grid_img], **PRIVATE)
    one_message(showing, shown)
    # a new image: no maps of the old one left beside it
    image.change(lambda: (None,) * 6 + (gr.Radio(choices=[], value=None), None), None, shown, **PRIVATE)
    for control in (layer, head):
        control.release(redraw_vision, [maps_state, layer, head], [vision_img], **QUEUED_PRIVATE)
    layer.release(heads_of_layer, [maps_state, layer, all_heads], [grid_img], **QUEUED_PRIVATE)
    all_heads.input(redraw_heads, [maps_state, layer, all_heads], [grid_img], **QUEUED_PRIVATE)
    word.input(redraw_cross, [maps_state, word], [cross_img], **QUEUED_PRIVATE)
