"""What every tab shares: checked inputs, the one place a `VLPError` becomes the sentence a user
reads, the image upload component, and small wiring settings.

Handlers (plain functions in the tab modules) raise `vlp.errors` classes, or let the library's
propagate; the tabs wrap the functions they wire with `safe`, which turns a `VLPError` into one
`gr.Error` sentence. Any other exception is a bug and shows as one.
"""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
from PIL import Image

from vlp.errors import BadImage, VLPError
from vlp.images import load_image

NO_IMAGE = "Give an image first: upload one, pick an example or draw a random scene."
PRIVATE = dict(api_visibility="private", queue=False)  # small UI updates: off the API, off the queue


def checked_image(image) -> Image.Image:
    """The input as an RGB image, or `BadImage` naming the file (not the server's temporary path)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise BadImage(NO_IMAGE)
    try:
        return load_image(image)
    except BadImage as err:
        if isinstance(image, (str, Path)):
            raise BadImage(str(err).replace(str(image), f"'{Path(image).name}'")) from None
        raise


def user_error(err: VLPError, title: str = "Cannot do that") -> gr.Error:
    """The gr.Error a user reads for `err`: its one sentence, no traceback."""
    return gr.Error(str(err), title=title)


def safe(fn):
    """`fn` with a `VLPError` turned into one gr.Error sentence; the server keeps serving."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VLPError as err:
            raise user_error(err) from None
    return wrapper


def image_input(**kwargs) -> gr.Image:
    """`gr.Image(type="filepath")` whose refusal of a bad upload is vlp's sentence, not a stack trace.

    Gradio opens an upload with PIL before any handler runs; when that fails (a text file, a
    truncated PNG, an image of hundreds of megapixels), `checked_image` says why in one
    sentence. (A wrapper on this one component, not a subclass: gradio writes a .pyi stub beside
    the source file of every component class it sees.)
    """
    image = gr.Image(type="filepath", **kwargs)
    gradio_preprocess = image.preprocess

    def preprocess(payload):
        try:
            return gradio_preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # PIL fails in many ways; checked_image names the one that matters
            path, name = payload.path, payload.orig_name or "the file"
            try:
                checked_image(path)
            except BadImage as err:
                raise user_error(BadImage(str(err).replace(f"'{Path(path).name}'", f"'{name}'")),
                                 title="Not an image") from None
            raise gr.Error(f"'{name}' could not be read as an image.", title="Not an image") from None

    image.preprocess = preprocess
    return image


def notice(sentence: str) -> gr.Markdown:
    """A warning at the top of a tab: what it cannot do with this model, and how to get it."""
    return gr.Markdown(f"⚠ {sentence}", elem_classes="notice")
