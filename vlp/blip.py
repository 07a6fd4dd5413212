"""BLIP through transformers: captioning, visual question answering and image–text matching.

A BLIP checkpoint is one of three heads on a ViT image encoder, and the folder's config.json
says which (`architectures`):

    BlipForConditionalGeneration  captions: a text decoder cross-attends to the image tokens
    BlipForQuestionAnswering      answers: a text encoder reads the question while
                                  cross-attending to the image, and a decoder writes the answer
    BlipForImageTextRetrieval     matches: the text encoder, cross-attending to the image, feeds
                                  a yes/no head (ITM); projections give joint embeddings (ITC)

Attention is computed explicitly (`attn_implementation="eager"`) so that its weights can be
returned and drawn.

    m = vlp.load("blip:Salesforce/blip-image-captioning-base")
    m.caption("cat.jpg")  → "a cat sitting on a couch"
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlp.attention import AttentionMaps
from vlp.checkpoint import fingerprint
from vlp.device import autocast, pick_device
from vlp.errors import BadCheckpoint, ModelUnavailable, Unsupported
from vlp.hub import hub_snapshot
from vlp.images import load_image, pixels_to_image
from vlp.limits import MAX_QUESTION_CHARS, check_beams, check_max_length, check_text, check_texts
from vlp.protocol import ANSWERER, CAPTIONER, MATCHER, Capabilities, ModelBase

# transformers' class name (config.json `architectures`) → what the checkpoint does.
KINDS = {
    "BlipForConditionalGeneration": "caption",
    "BlipForQuestionAnswering": "vqa",
    "BlipForImageTextRetrieval": "itm",
}
HUB_FILES = ["*.json", "*.txt", "*.safetensors"]  # config, processor, tokenizer, weights: no pickles
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
ANSWER_MAX_LENGTH = 10  # tokens, [DEC] included: BLIP's own setting for VQA answers
EMBED_BATCH = 16  # images or texts per forward pass when embedding many


def load_blip(name: str, device: str | None = "auto") -> "BLIPModel":
    """A BLIP folder (saved with `save_pretrained`, processor beside it) or a Hub id → a BLIPModel.

    Raises:
        vlp.errors.VLPError: one sentence: no such folder, weights not on this machine (with the command
            that fetches them), or a config naming no BLIP head.
    """
    import transformers

    folder = Path(name).expanduser()
    if not folder.is_dir():
        if not HUB_ID.match(name):
            raise ModelUnavailable(f"No BLIP folder at {name}, and it is not a Hugging Face model id (ORG/NAME).")
        required = ["config.json", "*.safetensors"]
        folder = hub_snapshot(name, HUB_FILES, required, f"The BLIP model {name}", f"hf download {name}")
    if not (folder / "config.json").is_file():
        raise BadCheckpoint(f"No config.json in {folder}: save a BLIP model there with save_pretrained.")
    if not list(folder.glob("*.safetensors")):
        raise BadCheckpoint(f"No .safetensors weights in {folder}; vlp loads no pickled weights.")
    architectures = json.loads((folder / "config.json").read_text()).get("architectures") or ["none"]
    if architectures[0] not in KINDS:
        raise Unsupported(f"{name} is a {architectures[0]} model; vlp loads BLIP as one of {', '.join(KINDS)}.")
    cls = getattr(transformers, architectures[0])
    model = cls.from_pretrained(folder, attn_implementation="eager", use_safetensors=True)
    processor = transformers.BlipProcessor.from_pretrained(folder)
    return BLIPModel(model, processor, KINDS[architectures[0]], f"blip:{name}", pick_device(device))


class BLIPModel(ModelBase):
    """A transformers BLIP model behind vlp's protocol; what it can do depends on its head."""

    def __init__(self, model, processor, kind: str, spec: str, device: torch.device):
        assert kind in KINDS.values()
        self.kind = kind
        self.fingerprint = fingerprint(model.state_dict())
        self.model = model.eval().to(device)
        self.processor = processor
        self.spec = spec
        self.device = device
        # Only the retrieval head matches (ITM) and projects images and texts into one space (ITC).
        self.capabilities = Capabilities(caption=kind == "caption", answer=kind == "vqa",
                                         match="probability" if kind == "itm" else None,
                                         embed=kind == "itm", attention=True)
        self.embed_dim = model.config.image_text_hidden_size if kind == "itm" else 0

    def card(self) -> dict:
        what = {
            "caption": "writes a caption for an image",
            "vqa": "answers a question about an image in a few words",
            "itm": "judges whether a text describes an image (ITM) and embeds both into one space (ITC)",
        }[self.kind]
        salesforce = self.spec.startswith("blip:Salesforce/blip-")
        tuned = {"caption": "COCO captions", "vqa": "VQA v2 and Visual Genome questions", "itm": "COCO retrieval"}
        if "flickr" in self.spec:
            tuned["itm"] = "Flickr30k retrieval"
        limits = [
            "It was trained on English text and knows only what its pretraining images showed.",
            "It can be confidently wrong, and it answers even questions the image cannot answer.",
        ]
        can = self.capabilities
        if not can.caption:
            limits.append(f"It cannot caption; load a captioner such as {CAPTIONER}.")
        if not can.answer:
            limits.append(f"It cannot answer questions; load a VQA model such as {ANSWERER}.")
        if not can.itm:
            limits.append(f"It cannot match or embed; load a retrieval model such as {MATCHER}.")
        return {
            "name": self.spec,
            "description": f"BLIP (Li et al., 2022), a ViT image encoder with a head that {what}; run by transformers.",
            "trained_on": (
                f"Web image–text pairs with captions bootstrapped by BLIP itself, fine-tuned on {tuned[self.kind]}."
                if salesforce
                else "unknown (a local BLIP checkpoint)"
            ),
            "metrics": {},
            "limits": limits,
        }

    def vision_shape(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        return vision.num_hidden_layers, vision.num_attention_heads

    # Inputs → tensors.

    def _pixels(self, images) -> torch.Tensor:
        """One image, or a list of them, → BLIP's pixel batch."""
        images = [load_image(i) for i in (images if isinstance(images, list) else [images])]
        return self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)

    def _text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.processor(text=texts, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    def _image_tokens(self, pixels: torch.Tensor, output_attentions: bool = False):
        return self.model.vision_model(pixel_values=pixels, output_attentions=output_attentions)

    def _decode(self, ids: torch.Tensor) -> str:
        return self.processor.decode(ids, skip_special_tokens=True).strip()

    # Generation.

    @torch.no_grad()
    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str:
        """A caption: greedy (num_beams=1) or beam search; at most `max_length` tokens."""
        self.require("caption")
        num_beams, max_length = check_beams(num_beams), check_max_length(max_length)
        with autocast(self.device):
            ids = self.model.generate(pixel_values=self._pixels(image), num_beams=num_beams, max_length=max_length)
        return self._decode(ids[0])

    @torch.no_grad()
    def answer(self, image, question: str) -> str:
        """A short answer to `question`, greedy."""
        inputs = self._question(image, question)
        with autocast(self.device):
            ids = self.model.generate(**inputs, max_length=ANSWER_MAX_LENGTH)
        return self._decode(ids[0])

    @torch.no_grad()
    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        """The k answers beam search finds, each with the probability the model gives it.

        The probability is that of the exact token sequence, end token included:
        Π p(token | question, image, earlier tokens), not normalised by length, so longer
        answers are not favoured; the beams are ranked the same way (length_penalty=0).
        """
        inputs = self._question(image, question)
        with autocast(self.device):
            answers = self.model.generate(
                **inputs, max_length=ANSWER_MAX_LENGTH, num_beams=k, num_return_sequences=k, length_penalty=0.0
            )  # (k, L): [DEC] answer [SEP], padded
            logp = self._answer_log_probs(inputs, answers)
        scores: dict[str, float] = {}
        for ids, lp in zip(answers, logp.tolist()):
            text = self._decode(ids)
            scores[text] = scores.get(text, 0.0) + float(np.exp(lp))  # two token paths, one answer
        return sorted(scores.items(), key=lambda kv: -kv[1])[:k]

    def _question(self, image, question: str) -> dict[str, torch.Tensor]:
        self.require("answer")
        question = check_text(question, "question", MAX_QUESTION_CHARS)
        return {"pixel_values": self._pixels(image), **self._text([question])}

    def _answer_log_probs(self, inputs: dict[str, torch.Tensor], answers: torch.Tensor) -> torch.Tensor:
        """log p(answer | question, image) for each row of `answers` ([DEC] … [SEP] then padding)."""
        image = self._image_tokens(inputs["pixel_values"]).last_hidden_state  # (1, T, width)
        question = self.model.text_encoder(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            encoder_hidden_states=image,
        ).last_hidden_state  # (1, Q, hidden)
        n = answers.shape[0]
        logits = self.model.text_decoder(
            input_ids=answers,
            encoder_hidden_states=question.expand(n, -1, -1),
            encoder_attention_mask=inputs["attention_mask"].expand(n, -1),
        ).logits  # (n, L, vocab): position i predicts token i + 1
        token_logp = logits[:, :-1].float().log_softmax(-1).gather(-1, answers[:, 1:, None])[..., 0]
        sep = self.model.config.text_config.sep_token_id
        # Count each token up to and including the first [SEP]; what follows is padding.
        ended_before = (answers[:, 1:] == sep).int().cumsum(-1) - (answers[:, 1:] == sep).int()
        return (token_logp * (ended_before == 0)).sum(-1)

    # Matching and embedding (the retrieval head).

    @torch.no_grad()
    def match(self, image, text: str) -> float:
        """ITM: the probability the model's yes/no head gives that `text` describes `image`."""
        return float(self.match_many(image, [text])[0])

    @torch.no_grad()
    def match_many(self, image, texts) -> np.ndarray:
        """`match` for each text: float32 (N,). The image is encoded once."""
        self.require("match")
        texts = check_texts(texts)
        if not texts:
            return np.zeros(0, np.float32)
        text = self._text(texts)
        with autocast(self.device):
            image_tokens = self._image_tokens(self._pixels(image)).last_hidden_state
            hidden = self.model.text_encoder(
                **text, encoder_hidden_states=image_tokens.expand(len(texts), -1, -1)
            ).last_hidden_state  # (N, L, hidden)
            logits = self.model.itm_head(hidden[:, 0])  # (N, 2): no, yes
        return logits.float().softmax(-1)[:, 1].cpu().numpy().astype(np.float32)

    def embed_images(self, images) -> np.ndarray:
        """ITC image embeddings: float32 (N, embed_dim), L2-normalised rows."""
        self.require("embed")
        return self.embed_in_batches(
            list(images), lambda chunk: self.model.vision_proj(self._image_tokens(self._pixels(chunk)).last_hidden_state[:, 0]),
            EMBED_BATCH)

    def embed_texts(self, texts) -> np.ndarray:
        """ITC text embeddings (the text encoder without the image): float32 (N, embed_dim)."""
        self.require("embed")
        return self.embed_in_batches(
            check_texts(texts), lambda chunk: self.model.text_proj(self.model.text_encoder(**self._text(chunk)).last_hidden_state[:, 0]),
            EMBED_BATCH)

    def logit_scale(self) -> float:
        """BLIP's contrastive temperature is not in transformers' retrieval checkpoints; 1 / 0.07,
        the value BLIP starts training from, scales classify's logits."""
        return 1 / 0.07

    # Attention.

    @torch.no_grad()
    def attention(self, image, text: str | None = None) -> AttentionMaps:
        """Image self-attention per layer, and the words' cross-attention to the image.

        Captioner: the words are the caption it writes (or `text`, read as a caption), and
        `cross[l][:, i]` is the attention of the step that produced word i (its query is the
        token before it). VQA and retrieval: the words are `text` (the question, or the caption
        to match) as the text encoder reads it while cross-attending to the image; `text` then
        also holds that encoder's self-attention. Without `text` they return the image only.
        """
        pixels = self._pixels(image)
        ip = self.processor.image_processor
        with autocast(self.device):
            vision = self._image_tokens(pixels, output_attentions=True)
        maps = AttentionMaps(
            image=pixels_to_image(pixels[0], ip.image_mean, ip.image_std),
            grid=self.model.config.vision_config.image_size // self.model.config.vision_config.patch_size,
            vision=[a[0].float().cpu().numpy() for a in vision.attentions],
        )
        tokenizer = self.processor.tokenizer
        image_tokens = vision.last_hidden_state
        if self.kind == "caption":
            if text is None:
                ids = self.model.generate(pixel_values=pixels, max_length=30)[0, 1:]  # drop [DEC]; ends with [SEP]
            else:
                ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], device=self.device)
            bos = torch.tensor([self.model.config.text_config.bos_token_id], device=self.device)
            steps = torch.cat([bos, ids[:-1]])[None]  # step i reads the token before word i
            with autocast(self.device):
                out = self.model.text_decoder(
                    input_ids=steps, encoder_hidden_states=image_tokens, output_attentions=True
                )
            maps.tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
            maps.cross = [a[0].float().cpu().numpy() for a in out.cross_attentions]
        elif text is not None:
            enc = self._text(check_texts(text))
            with autocast(self.device):
                out = self.model.text_encoder(**enc, encoder_hidden_states=image_tokens, output_attentions=True)
            maps.tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
            maps.cross = [a[0].float().cpu().numpy() for a in out.cross_attentions]
            maps.text = [a[0].float().cpu().numpy() for a in out.attentions]
        return maps
