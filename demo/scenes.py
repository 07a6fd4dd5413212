"""The left column of the page: the image every tab reads, the example scenes, a new random
scene, and a note on what the demo knows about the picture.

Scenes the demo drew are remembered by their pixels (`KnownScenes`), so that an image coming
back from the browser can be checked against its scene's truth by the Caption and Ask tabs.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from vlp import world
from vlp.errors import BadArgument, BadImage
from vlp.images import image_size, load_image
from vlp.protocol import Model

from demo.inputs import (QUEUED, QUEUED_PRIVATE, checked_image, escaped, image_input, image_path, safe,
                         without_path)

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
SCENE_SPLITS = ("test", "novel")  # what "new random scene" draws from; never train
RANDOM_INDICES = 1_000_000  # random scenes are drawn from this many of a split


def pixel_key(image: Image.Image) -> str:
    """A hash of the pixels: the same picture gives the same key however it was saved."""
    a = np.asarray(image.convert("RGB"))
    return hashlib.blake2b(a.tobytes() + str(a.shape).encode(), digest_size=16).hexdigest()


class KnownScenes:
    """Scenes the demo drew (examples, random scenes), found again by their pixels, so that a
    question typed about one can be judged (`world.true_answer`). Safe to share between requests."""

    def __init__(self, limit: int = 2000):
        self.limit = limit
        self._scenes: OrderedDict[str, tuple[world.Scene, str]] = OrderedDict()
        self._sizes: set[tuple[int, int]] = set()  # (width, height) of every scene drawn
        self._lock = threading.Lock()

    def add(self, scene: world.Scene, image: Image.Image, name: str) -> None:
        key = pixel_key(image)
        with self._lock:
            self._sizes.add(image.size)
            self._scenes[key] = (scene, name)
            self._scenes.move_to_end(key)
            while len(self._scenes) > self.limit:
                self._scenes.popitem(last=False)

    def might_know(self, path) -> bool:
        """False when the image file's size (read from its header) is that of no scene drawn here,
        so a photo is not decoded only to be told apart; BadImage when it is not an image."""
        with self._lock:
            return image_size(path) in self._sizes

    def find(self, image: Image.Image) -> tuple[world.Scene, str] | None:
        with self._lock:
            return self._scenes.get(pixel_key(image))

    def true_answer(self, image: Image.Image, question: str) -> str | None:
        """The true answer when the demo drew this image and the question has one; else None."""
        found = self.find(image)
        return None if found is None else world.true_answer(found[0], question)


def example_files() -> list[Path]:
    """The example scene images in assets/examples, sorted."""
    return sorted(EXAMPLES.glob("*.png"))


def load_examples(known: KnownScenes) -> list[str]:
    """Register the example scenes (PNG + scene JSON) and return the image paths."""
    paths = []
    for png in example_files():
        meta = png.with_suffix(".json")
        if meta.is_file():
            known.add(world.Scene.load_json(meta), load_image(png), f"example {png.stem}")
        paths.append(str(png))
    return paths


def random_scene(known: KnownScenes, split: str = "test", index: int | None = None) -> tuple[Image.Image, str]:
    """Draw a scene of `split` (a random one unless `index`), remember it; (image, note)."""
    if split not in SCENE_SPLITS:
        raise BadArgument(f"Unknown split {split!r}; choose one of {', '.join(SCENE_SPLITS)}.")
    if index is None:
        index = int(np.random.default_rng().integers(RANDOM_INDICES))
    scene = world.sample_scene(split, int(index))
    image = world.render(scene)
    known.add(scene, image, f"{split} scene #{index}")
    return image, scene_note(known, image)


def scene_note(known: KnownScenes, image, model: Model | None = None) -> str:
    """Markdown saying what the scene is when the demo drew it, or why the file is not an image;
    for an upload, the model's notice when the image lies outside what it knows (a photo for a
    Shapes World model). Empty when there is no image."""
    if image is None:
        return ""
    try:
        # A file whose size no drawn scene has is not decoded just to look it up.
        found = None
        if not (isinstance(image, (str, Path)) and not known.might_know(image)):
            found = known.find(checked_image(image))
        if found is not None:
            scene, name = found
            return f"Shapes World, {name}. True caption: **{world.caption(scene)}**"
        notice = model.domain_notice(checked_image(image)) if model is not None else None
    except BadImage as err:
        return f"⚠ {escaped(without_path(str(err), image))}"
    unknown = "An uploaded image: the demo does not know its truth."
    return f"{unknown}  \n⚠ **{notice}**" if notice else unknown


def build_image_column(known: KnownScenes, model: Model) -> gr.Image:
    """The image input, the random-scene button, the scene note (with the model's notice for an
    image outside what it knows) and the examples; the image component, which the tabs read."""
    examples = load_examples(known)
    image = image_input(label="Image", format="png", height=300, sources=["upload", "clipboard"], elem_id="image")
    with gr.Row():
        random_btn = gr.Button("New random scene", scale=3, elem_id="random-scene")
        split = gr.Radio(list(SCENE_SPLITS), value="test", show_label=False, scale=2, min_width=120,
                         container=False, info="novel: pairs unseen in training")
    note = gr.Markdown(elem_id="scene-note")
    gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Example scenes (test split)",
                examples_per_page=6, elem_id="examples")

    @safe
    def on_random(split):
        return random_scene(known, split)

    random_btn.click(on_random, [split], [image, note], api_name="random_scene", **QUEUED)
    # preprocess=False: the file as uploaded, not opened by Gradio; a bad one is said here, once
    image.change(lambda img: scene_note(known, image_path(img), model), [image], [note], preprocess=False,
                 **QUEUED_PRIVATE)
    return image
