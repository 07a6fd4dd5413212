"""Two models behind one protocol: a main model (e.g. CLIP) and a captioner/answerer (e.g. BLIP).

    clip = vlp.load("openclip:ViT-B-32:laion2b_s34b_b79k")
    blip = vlp.load("blip:Salesforce/blip-image-captioning-base")
    m = compose(clip, blip)
    m.caption(img)          # BLIP
    m.classify(img, labels) # CLIP
"""
from __future__ import annotations

import hashlib

import numpy as np

from vlp.protocol import Capabilities, Model, ModelBase


def compose(main: Model, captioner: Model) -> "Composite":
    """`main` embeds, classifies and shows attention; `captioner` captions and answers."""
    return Composite(main, captioner)


class Composite(ModelBase):
    """Routes each protocol method to the part that can serve it, by the parts' capabilities.

    - caption / answer / answer_scores: the captioner when it can, else the main model.
    - embed_images / embed_texts / classify / attention / vision_shape: the main model.
    - match / match_many / match_pairs: the part whose match score is a trained probability
      (ITM), the captioner first (e.g. a BLIP retrieval model); else the main model's
      (e.g. CLIP's squashed cosine).
    """

    def __init__(self, main: Model, captioner: Model):
        self.main = main
        self.captioner = captioner
        self.spec = f"{main.spec} + {captioner.spec}"
        self.fingerprint = hashlib.sha256(f"{main.fingerprint}+{captioner.fingerprint}".encode()).hexdigest()[:12]
        self.embed_dim = main.embed_dim
        self.device = main.device
        self._writer = captioner if captioner.capabilities.caption else main
        self._answerer = captioner if captioner.capabilities.answer else main
        self._matcher = next(
            (m for m in (captioner, main) if m.capabilities.itm),
            next((m for m in (main, captioner) if m.capabilities.match), main),
        )
        self.capabilities = Capabilities(
            caption=self._writer.capabilities.caption,
            answer=self._answerer.capabilities.answer,
            match=self._matcher.capabilities.match,
            embed=main.capabilities.embed,
            attention=main.capabilities.attention,
        )

    def card(self) -> dict:
        a, b = self.main.card(), self.captioner.card()
        return {
            "name": self.spec,
            "description": f"Two models: {a['name']} embeds, classifies and shows attention; "
            f"{b['name']} captions and answers. {a['description']} {b['description']}",
            "trained_on": f"{a['name']}: {a['trained_on']}; {b['name']}: {b['trained_on']}",
            "metrics": {name: card["metrics"] for name, card in ((a["name"], a), (b["name"], b)) if card["metrics"]},
            "limits": [f"{card['name']}: {limit}" for card in (a, b) for limit in card["limits"]],
        }

    def vocabulary(self) -> list[str] | None:
        """The words of the part that answers questions (where people type the most)."""
        return self._answerer.vocabulary()

    def domain_notice(self, image) -> str | None:
        """The notice of whichever part would speak about `image` first: the captioner, then the main model."""
        return self.captioner.domain_notice(image) or self.main.domain_notice(image)

    def vision_shape(self) -> tuple[int, int]:
        return self.main.vision_shape()

    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str:
        return self._writer.caption(image, num_beams=num_beams, max_length=max_length)

    def caption_many(self, images, num_beams: int = 1, max_length: int = 30) -> list[str]:
        return self._writer.caption_many(images, num_beams=num_beams, max_length=max_length)

    def answer(self, image, question: str) -> str:
        return self._answerer.answer(image, question)

    def answer_many(self, images, questions: list[str]) -> list[str]:
        return self._answerer.answer_many(images, questions)

    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        return self._answerer.answer_scores(image, question, k=k)

    def answer_scores_many(self, images, questions: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
        return self._answerer.answer_scores_many(images, questions, k=k)

    def match(self, image, text: str) -> float:
        return self._matcher.match(image, text)

    def match_many(self, image, texts) -> np.ndarray:
        return self._matcher.match_many(image, texts)

    def match_pairs(self, images, texts) -> np.ndarray:
        return self._matcher.match_pairs(images, texts)

    def embed_images(self, images) -> np.ndarray:
        return self.main.embed_images(images)

    def embed_texts(self, texts) -> np.ndarray:
        return self.main.embed_texts(texts)

    def classify(self, image, labels, templates=None) -> dict[str, float]:
        return self.main.classify(image, labels, templates)

    def attention(self, image, text: str | None = None):
        return self.main.attention(image, text)
