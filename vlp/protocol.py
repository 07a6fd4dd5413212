"""The model protocol: what every model family offers the demo, the index, evaluation and the CLI.

Four families serve it: vlp's own model (`vlp.api.VLPModel`), OpenCLIP weights in vlp's layers
(`vlp.clip.CLIPModel`), BLIP through transformers (`vlp.blip.BLIPModel`) and a composition of two
(`vlp.compose.Composite`). A caller never guesses with `hasattr`: it reads `model.capabilities`,
which says what the model can do and what its match score means, and calls the method. A method
the model cannot serve raises `Unsupported` with a sentence naming a model that can.

`ModelBase` gives every family the batched forms (`caption_many`, `answer_many`, `match_pairs`)
as loops over the single forms, the refusals, and zero-shot classification by embeddings;
a family overrides what it can do faster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from vlp.attention import AttentionMaps
from vlp.device import autocast
from vlp.errors import Unsupported
from vlp.limits import check_labels

# Models to name when one cannot do what was asked.
CAPTIONER = "blip:Salesforce/blip-image-captioning-base"
ANSWERER = "blip:Salesforce/blip-vqa-base"
MATCHER = "blip:Salesforce/blip-itm-base-coco"
EMBEDDER = "openclip:ViT-B-32:laion2b_s34b_b79k"
REAL_WEIGHTS = f"--model {EMBEDDER} --captioner {CAPTIONER}"  # app.py's flags for photos

MatchKind = Literal["probability", "cosine"]


@dataclass(frozen=True)
class Capabilities:
    """What a model can do. A capability that is False makes its methods raise `Unsupported`."""

    caption: bool  # caption, caption_many
    answer: bool  # answer, answer_many, answer_scores, answer_scores_many
    match: MatchKind | None  # match, match_many, match_pairs: "probability" from a trained
    #   image–text matching head (ITM), "cosine" when it is a squashed embedding similarity
    embed: bool  # embed_images, embed_texts into one space (search), classify
    attention: bool  # attention maps of its own layers

    @property
    def itm(self) -> bool:
        """True when `match` is a trained probability (re-ranking by it makes sense)."""
        return self.match == "probability"


@runtime_checkable
class Model(Protocol):
    """What the demo, the index, evaluation and the CLI call. Images: PIL, path, bytes or array."""

    spec: str  # how it was loaded: "vlp-tiny", "openclip:ViT-B-32:…", a path
    fingerprint: str  # a short hash of its weights: an index built by another model is refused
    embed_dim: int  # size of embed_images/embed_texts rows; 0 when it does not embed
    capabilities: Capabilities

    def card(self) -> dict: ...  # name, description, trained_on, metrics, limits

    def vision_shape(self) -> tuple[int, int]: ...  # (layers, heads) of the image encoder

    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str: ...

    def caption_many(self, images, num_beams: int = 1, max_length: int = 30) -> list[str]: ...

    def answer(self, image, question: str) -> str: ...

    def answer_many(self, images, questions: list[str]) -> list[str]: ...

    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]: ...

    def answer_scores_many(self, images, questions: list[str], k: int = 5) -> list[list[tuple[str, float]]]: ...

    def match(self, image, text: str) -> float: ...

    def match_many(self, image, texts: list[str]) -> np.ndarray: ...

    def match_pairs(self, images, texts: list[str]) -> np.ndarray: ...

    def embed_images(self, images) -> np.ndarray: ...  # float32 (N, embed_dim), unit rows

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...  # float32 (N, embed_dim), unit rows

    def classify(self, image, labels: list[str], templates: list[str] | None = None) -> dict[str, float]: ...

    def attention(self, image, text: str | None = None) -> AttentionMaps: ...

    def domain_notice(self, image) -> str | None: ...  # a sentence when the image is not its world

    def vocabulary(self) -> list[str] | None: ...  # the words it reads; None when any


class ModelBase:
    """Shared behaviour of the model families: batched forms, refusals, zero-shot classification.

    A subclass sets `capabilities` and implements the single forms it can serve.
    """

    spec: str = "model"
    capabilities: Capabilities
    device: torch.device
    embed_dim: int = 0
    default_template: str = "{}"  # zero-shot prompt when none is given ("a photo of a {}." for CLIP)

    def require(self, capability: str) -> None:
        """Raise `Unsupported` (one sentence naming a model that can) unless it can do `capability`."""
        if getattr(self.capabilities, capability):
            return
        family = self.spec.split(":")[0]
        raise Unsupported({
            "caption": f"{self.spec} cannot caption; load a captioner such as {CAPTIONER}.",
            "answer": f"{self.spec} cannot answer questions; load a VQA model such as {ANSWERER}.",
            "match": f"{self.spec} has no matching head to judge whether a text describes an image; load {MATCHER}.",
            "embed": f"{self.spec} does not embed images and texts into one space; load {EMBEDDER} or {MATCHER}.",
            "attention": f"{family} models do not show their attention here.",
        }[capability])

    @torch.no_grad()
    def embed_in_batches(self, items: list, encode, batch_size: int) -> np.ndarray:
        """`encode(chunk) -> (n, embed_dim) tensor` over `items` in chunks → float32 unit rows (N, embed_dim)."""
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for i in range(0, len(items), batch_size):
            with autocast(self.device):
                e = encode(items[i : i + batch_size])
            out.append(F.normalize(e.float(), dim=-1).cpu().numpy())  # in float32 again after bf16
        return np.concatenate(out)

    # Batched forms: one at a time unless the family does better.
    def caption_many(self, images, num_beams: int = 1, max_length: int = 30) -> list[str]:
        return [self.caption(image, num_beams=num_beams, max_length=max_length) for image in images]

    def answer_many(self, images, questions: list[str]) -> list[str]:
        return [self.answer(image, q) for image, q in zip(images, questions, strict=True)]

    def answer_scores_many(self, images, questions: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
        return [self.answer_scores(image, q, k=k) for image, q in zip(images, questions, strict=True)]

    def match_many(self, image, texts: list[str]) -> np.ndarray:
        return np.array([self.match(image, t) for t in texts], dtype=np.float32)

    def match_pairs(self, images, texts: list[str]) -> np.ndarray:
        return np.array([self.match(i, t) for i, t in zip(images, texts, strict=True)], dtype=np.float32)

    # What a family may lack: refused with a sentence (`require`), unless the family declares the
    # capability, which it then must implement (`_lacks`).
    def _lacks(self, capability: str):
        self.require(capability)
        raise TypeError(f"{type(self).__name__} declares '{capability}' in its capabilities but does not implement it.")

    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str:
        self._lacks("caption")

    def answer(self, image, question: str) -> str:
        self._lacks("answer")

    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        self._lacks("answer")

    def match(self, image, text: str) -> float:
        self._lacks("match")

    def embed_images(self, images) -> np.ndarray:
        self._lacks("embed")

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self._lacks("embed")

    def attention(self, image, text: str | None = None) -> AttentionMaps:
        self._lacks("attention")

    def vocabulary(self) -> list[str] | None:
        """The words it reads, when it reads only some (vlp's own models); None for an open vocabulary."""
        return None

    def domain_notice(self, image) -> str | None:
        """One sentence when `image` lies outside what the model was trained on, else None.

        Models trained on web photos (CLIP, BLIP) say nothing; vlp's own models know only
        Shapes World and say so about anything else.
        """
        return None

    def logit_scale(self) -> float:
        """exp of the learned temperature of contrastive training: logits = scale · cosine."""
        return 1.0

    def classify(self, image, labels: list[str], templates: list[str] | None = None) -> dict[str, float]:
        """Zero-shot: softmax over labels of logit_scale · cos(image, mean embedding of its prompts).

        Args:
            labels: the classes, e.g. ["circle", "square"].
            templates: prompts with "{}" for the label; default [`default_template`]. Several
                templates are averaged per label (CLIP's prompt ensembling).
        Returns:
            {label: probability}, in the order given, summing to 1.
        """
        self.require("embed")
        labels, templates = check_labels(labels, templates or [self.default_template])
        prompts = self.embed_texts([t.format(label) for label in labels for t in templates])
        classes = prompts.reshape(len(labels), len(templates), -1).mean(axis=1)  # (labels, D)
        classes /= np.linalg.norm(classes, axis=-1, keepdims=True)
        logits = self.logit_scale() * (classes @ self.embed_images([image])[0])
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return {label: float(q) for label, q in zip(labels, p)}
