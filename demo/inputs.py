"""What every tab shares: checked inputs, the one place a `VLPError` becomes the sentence a user
reads, the image upload component, and the wiring settings of events.

Handlers (plain functions in the tab modules) raise `vlp.errors` classes, or let the library's
propagate; the tabs wrap the functions they wire with `safe`, which turns a `VLPError` into one
`gr.Error` sentence, logged as one line. Any other exception is a bug and shows as one.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import gradio as gr
import pydantic
from gradio.exceptions import InvalidPathError
from PIL import Image

from vlp.errors import BadArgument, BadImage, UnknownWords, VLPError
from vlp.images import load_image

NO_IMAGE = "Give an image first: upload one, pick an example or draw a random scene."
WORDS_LIST = "Words the model knows"  # the Ask tab's list, which an unknown word's sentence points to
# Every event that reads an image, a table or the model is queued, and all of them share one
# concurrency limit (`demo.ui.CONCURRENCY`): the server's cores, not a limit per event; only the
# batched model endpoints wait in a group of their own (`demo.batcher.BATCHED`).
QUEUED = dict(concurrency_id="vlp")
QUEUED_PRIVATE = dict(api_visibility="private", **QUEUED)  # off the API docs, still through the queue
# Small UI updates run outside the queue, so they must stay trivial: their inputs are never an
# image, a file or a table (tests/test_demo_serving.py checks every one).
PRIVATE = dict(api_visibility="private", queue=False)

log = logging.getLogger("demo")


def escaped(text: str) -> str:
    """`text` with every invisible or control character written as its escape (\\u200b, \\x00)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def checked_image(image) -> Image.Image:
    """The input as an RGB image, or `BadImage` naming the file (not the server's temporary path)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise BadImage(NO_IMAGE)
    try:
        return load_image(image)
    except BadImage as err:
        raise BadImage(without_path(str(err), image)) from None


def without_path(sentence: str, image) -> str:
    """`sentence` naming the file `image` by its name, not by the server's temporary path."""
    if isinstance(image, (str, Path)):
        return sentence.replace(str(image), f"'{Path(image).name}'")
    return sentence


def image_path(value) -> str | None:
    """The file of an image event wired with `preprocess=False` (Gradio hands it the upload's
    FileData as a dict, without opening the file), or the value itself when it is a path."""
    if isinstance(value, dict):
        return value.get("path")
    return value


def user_error(err: VLPError, title: str = "Cannot do that") -> gr.Error:
    """The gr.Error a user reads for `err`: its one sentence (invisible characters escaped), logged
    as one line rather than Gradio's traceback."""
    sentence = escaped(str(err))
    if isinstance(err, UnknownWords):  # the list is one click away on the page, not only on the command line
        sentence += f" On this page: '{WORDS_LIST}', under the Ask tab's question box."
    log.info("refused: %s", sentence)
    return gr.Error(sentence, title=title, print_exception=False)


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
    """`gr.Image(type="filepath")` that hands the handler the uploaded file as it came, for
    `vlp.images.load_image` to read, exactly as the library does.

    `image_mode=None`: Gradio neither converts nor re-encodes the upload (with a mode it decodes
    the whole image and writes a converted copy to a file that identical uploads share). Gradio
    only opens the file's header; when that fails (a text file, a PNG of hundreds of
    megapixels), `checked_image` says why in one sentence. An inline `data:` URL is refused:
    Gradio would decode it before any size check. (A wrapper on this one component, not a
    subclass: gradio writes a .pyi stub beside the source file of every component class it sees.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    gradio_preprocess = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.url and payload.url.startswith("data:"):
            raise user_error(BadImage("Send the image as an uploaded file, not as inline data."), title="Not an image")
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
            raise user_error(BadImage(f"'{name}' could not be read as an image."), title="Not an image") from None

    image.preprocess = preprocess
    return image


def number_slider(minimum: float, maximum: float, **kwargs) -> gr.Slider:
    """A gr.Slider whose value reaches the handler as sent, for `vlp.limits` to check: Gradio's
    own check fails on "abc" or null with a TypeError, which a caller would read as "Error"."""
    slider = gr.Slider(minimum, maximum, **kwargs)
    slider.preprocess = lambda payload: payload
    return slider


def readable_inputs(blocks: gr.Blocks) -> None:
    """Make a request whose values Gradio itself cannot read (a table that is not a table, a
    file that is not a file, a choice not offered) get one sentence naming the input, logged as
    one line, instead of Gradio's generic "Error" and a traceback. A file given as a URL is
    refused before Gradio would download it, and one not uploaded here before Gradio refuses it."""
    gradio_preprocess = blocks.preprocess_data

    async def preprocess_data(block_fn, inputs, *args, **kwargs):
        for component, value in zip(block_fn.inputs, inputs):
            if any(_url(item) for item in (value if isinstance(value, list) else [value])):
                raise user_error(BadArgument(f"'{_name(component)}' takes an uploaded file; this demo fetches no URL."))
        try:
            return await gradio_preprocess(block_fn, inputs, *args, **kwargs)
        except InvalidPathError:
            raise user_error(BadArgument("A file of this request was not uploaded here; upload it first.")) from None
        except gr.Error as err:
            if not err.print_exception:  # ours: logged already
                raise
            raise user_error(BadArgument(err.message)) from None
        except Exception:
            sentence = _unreadable(block_fn.inputs, inputs)
            if sentence is None:  # no value to blame: a bug, shown as one
                raise
            raise user_error(BadArgument(sentence)) from None

    blocks.preprocess_data = preprocess_data


def _name(component) -> str:
    return component.label or type(component).__name__


def _url(value) -> bool:
    """Whether `value` is a file Gradio would fetch from the web (its path a URL)."""
    return isinstance(value, dict) and str(value.get("path") or "").startswith(("http://", "https://"))


def _unreadable(components, values) -> str | None:
    """One sentence on which value of a request Gradio could not read: too few values, one that
    its data model refuses, else a missing one; None when none is to blame."""
    if len(values) < len(components):
        return f"This request sends {len(values)} values; it takes {len(components)}."
    checked = [(_name(c), c.data_model, v) for c, v in zip(components, values) if c.data_model]
    for name, model, value in checked:
        try:
            if value is not None:
                model.model_validate(value, context={"validate_meta": True})
        except pydantic.ValidationError as invalid:
            return f"The value for '{name}' is not what it takes ({invalid.errors()[0]['msg']})."
    for name, _, value in checked:
        if value is None:
            return f"The value for '{name}' is missing."
    return None


def notice(sentence: str) -> gr.Markdown:
    """A warning at the top of a tab: what it cannot do with this model, and how to get it."""
    return gr.Markdown(f"⚠ {sentence}", elem_classes="notice")


def domain_note(model, image) -> str:
    """Markdown beside a result: the model's one sentence (`model.domain_notice`) when `image` lies
    outside what it knows, such as a photo for a Shapes World model; empty otherwise."""
    sentence = model.domain_notice(image)
    return f"⚠ **{sentence}**" if sentence else ""


def score_number(**kwargs) -> gr.Number:
    """A gr.Number for a score that shows "–" until there is one (and after a clear), not Gradio's 0:
    no score (None) is sent to the page as an empty value, which the browser shows as the placeholder."""
    number = gr.Number(placeholder="–", interactive=False, **kwargs)
    gradio_postprocess = number.postprocess
    number.postprocess = lambda value: "" if value is None else gradio_postprocess(value)
    number.value = ""
    return number


def one_message(event, outputs: list):
    """Wire `event` (its progress and error shown on `outputs[0]` alone: `show_progress_on`) so that
    a failure is one message: the error's sentence, with every output emptied, not an "Error" badge
    on each and the previous result left beside it."""
    return event.failure(lambda: None if len(outputs) == 1 else (None,) * len(outputs), None, outputs, **PRIVATE)
