"""One place for every limit on a request: the demo's sliders, its handlers, the library and the
command line all read them here, and check them with the functions below.

Each limit bounds the work one request can cause, before any of it starts.
"""
from __future__ import annotations

import math
import numbers

from vlp.errors import BadArgument, BadText

MAX_BEAMS = 8  # beam search keeps at most this many hypotheses (cost grows linearly with it)
MAX_CAPTION_WORDS = 40  # longest caption asked for, in tokens (vlp-tiny's decoder holds 40)
MAX_K = 48  # most search results in one request to the demo
MAX_RESULTS = 10_000  # most results one library search returns
MAX_TEXT_CHARS = 300  # longest sentence to match, search with or explain
MAX_QUESTION_CHARS = 200  # longest question
MAX_EMBED_CHARS = 10_000  # longest text the library embeds (CLIP reads only its first 77 tokens)
MAX_QUESTION_WORDS = 24  # longest question or sentence a vlp model reads, in words
MAX_LABELS = 100  # most labels for zero-shot classification
MAX_WORKED_TOKENS = 16  # rows of Q, K or V in the worked attention example (a class needs a handful)
MAX_WORKED_WIDTH = 16  # columns of Q, K or V there
MAX_PIXELS = 40_000_000  # larger images are refused from their header, before decoding
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MiB: the demo's server refuses larger uploads
MAX_ADD_FILES = 16  # most images one request adds to a visitor's search or uploads (40 MP each: ~6 s of 2 cores)
MAX_OWN_IMAGES = 128  # most images one visitor's own search holds (a session)
MAX_TRAIN_STEPS = 1000  # most steps of a run started from the demo's Train tab (32 scenes each)
MAX_TRAIN_SECONDS = 600  # a Train tab run stops after this long, whatever its steps


def whole_number(value, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high], or BadArgument naming `name` and the range.

    Accepts ints and whole floats (a slider sends 3.0); refuses bools, strings, NaN, infinities and fractions.
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not number or int(value) != value:
        raise BadArgument(f"The {name} must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= int(value) <= high:
        raise BadArgument(f"The {name} must be from {low} to {high}, got {int(value)}.")
    return int(value)


def check_beams(num_beams) -> int:
    return whole_number(num_beams, "number of beams", 1, MAX_BEAMS)


def check_max_length(max_length) -> int:
    return whole_number(max_length, "maximum length", 1, MAX_CAPTION_WORDS)


def check_k(k) -> int:
    return whole_number(k, "number of results", 1, MAX_K)


def check_text(text, what: str = "text", max_chars: int = MAX_TEXT_CHARS) -> str:
    """`text` with its whitespace collapsed, or BadText when it is not a string, empty or too long."""
    if not isinstance(text, str):
        raise BadText(f"The {what} must be a string, got {type(text).__name__}.")
    text = " ".join(text.split())
    if not text:
        raise BadText(f"The {what} is empty; type a few words.")
    if len(text) > max_chars:
        raise BadText(f"The {what} is too long: {len(text)} characters, at most {max_chars}.")
    return text


def check_texts(texts, what: str = "text", max_chars: int = MAX_EMBED_CHARS) -> list[str]:
    """A list of strings as given (a lone string becomes a list of one), each at most `max_chars`.

    For models defined on any string (CLIP embeds "" too); a person's input goes through
    `check_text`, which also refuses empty text.
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise BadText(f"Each {what} must be a string, got {type(t).__name__}.")
        if len(t) > max_chars:
            raise BadText(f"The {what} is too long: {len(t)} characters, at most {max_chars}.")
    return texts


def check_labels(labels, templates) -> tuple[list[str], list[str]]:
    """Zero-shot labels and prompt templates: labels unique and non-empty, "{}" in each template."""
    labels = [str(label).strip() for label in labels]
    if not labels or not all(labels):
        raise BadArgument("Give at least one non-empty label to classify into.")
    if len(labels) > MAX_LABELS:
        raise BadArgument(f"Give at most {MAX_LABELS} labels, not {len(labels)}.")
    if len(set(labels)) != len(labels):
        raise BadArgument("Each label must be given once.")
    templates = list(templates or ["{}"])
    if not all(isinstance(t, str) and "{}" in t for t in templates):
        raise BadArgument('Each prompt template needs a "{}" where the label goes, e.g. "a photo of a {}.".')
    return labels, templates
