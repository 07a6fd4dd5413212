"""The errors vlp raises for people: each carries one sentence that says what is wrong.

They subclass ValueError, so `except ValueError` still catches them; the demo and the command
line turn a `VLPError` into that sentence in one place each (`demo/inputs.py`, `vlp/cli.py`).
Anything else that escapes is a bug in vlp, and shows as one.
"""
from __future__ import annotations


class VLPError(ValueError):
    """Bad input or a request a model cannot serve, said in one sentence."""


class BadImage(VLPError):
    """The input is not a readable image, or is too large or empty."""


class BadText(VLPError):
    """A text is empty, too long or not a string."""


class UnknownWords(BadText):
    """A text uses words that the model's vocabulary lacks.

    Attributes:
        words: the unknown words, in the order they first appear.
    """

    def __init__(self, words: list[str], what: str = "text"):
        self.words = list(dict.fromkeys(words))
        listed = ", ".join(f"'{w}'" for w in self.words)
        super().__init__(f"The model does not know the word(s) {listed} in the {what}; it knows only Shapes World "
                         "words (`python -m vlp words` lists them).")


class BadScene(VLPError):
    """A Shapes World scene breaks the world's contract (docs/world.md)."""


class BadArgument(VLPError):
    """A setting is out of its range (beams, lengths, k, labels …)."""


class BadCheckpoint(VLPError):
    """A checkpoint or search index on disk is missing, incomplete, corrupt or for another model."""


class ModelUnavailable(VLPError):
    """A model's weights are not on this machine and cannot be fetched now."""


class Unsupported(VLPError):
    """The model cannot do what was asked (e.g. caption with CLIP); the sentence names one that can."""
