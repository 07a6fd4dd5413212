"""`VLPModel`: the one object the demo, the command line and the tests call.

It holds the network, its tokenizer and its device, turns user input (images of any kind,
free text) into tensors, and answers in plain Python types. Checkpoints are folders of
`config.json`, `model.safetensors`, `tokenizer.json` and `metrics.json`; no pickle.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vlp.attention import AttentionMaps
from vlp.device import autocast, pick_device
from vlp.generate import generate
from vlp.model import VLP, VLPConfig
from vlp.pretrained import fingerprint, pixels_to_image
from vlp.text import Tokenizer
from vlp.vision import preprocess

MAX_QUESTION_WORDS = 24


class VLPModel:
    """A vlp network with its tokenizer, on one device.

    Args:
        net: the VLP network; tokenizer: its tokenizer.
        spec: the name it was loaded by ("vlp-tiny", a path, …).
        metrics: measured metrics to show on its card (from metrics.json).
    """

    can_caption = True
    can_answer = True

    def __init__(self, net: VLP, tokenizer: Tokenizer, spec: str = "vlp", metrics: dict | None = None, device="auto"):
        self.device = pick_device(device) if isinstance(device, (str, type(None))) else device
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.metrics = metrics or {}
        self.fingerprint = fingerprint(net.state_dict())

    # --- checkpoints ------------------------------------------------------------------------
    @classmethod
    def load(cls, path, device="auto", spec: str | None = None) -> "VLPModel":
        path = Path(path)
        for name in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (path / name).is_file():
                raise ValueError(f"The checkpoint at {path} is incomplete: {name} is missing.")
        try:
            config = VLPConfig.from_dict(json.loads((path / "config.json").read_text())["model"])
            tokenizer = Tokenizer.load(path / "tokenizer.json")
            state = load_file(path / "model.safetensors")
            net = VLP(config, pad_id=tokenizer.pad_id)
            net.load_state_dict(state, strict=True)
        except Exception as err:  # a corrupt file fails in many ways; the user needs one sentence
            raise ValueError(f"The checkpoint at {path} could not be read ({type(err).__name__}: {err}).") from None
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        return cls(net, tokenizer, spec or path.name, metrics, device)

    def save(self, path, extra_config: dict | None = None) -> None:
        """Write the checkpoint folder atomically: into a temporary folder, then renamed."""
        save_checkpoint(self.net, self.tokenizer, path, self.metrics, extra_config)

    @property
    def embed_dim(self) -> int:
        return self.net.config.vision.embed_dim

    def card(self) -> dict:
        return {
            "name": self.spec,
            "description": "A vlp model pretrained from scratch on Shapes World: ViT image encoder, "
            "text encoder, multimodal decoder (ITC, ITM, captioning, VQA).",
            "trained_on": "Shapes World v1 (procedurally drawn scenes of 1–3 coloured shapes)",
            "metrics": self.metrics,
            "limits": [
                "It knows only Shapes World: circles, squares, triangles and diamonds in six colours and two sizes.",
                "On a photo it still answers in shapes words; load real weights (openclip:…, blip:…) for photos.",
                f"Its vocabulary has {len(self.tokenizer)} words; questions with other words are refused.",
            ],
        }

    # --- input checks -----------------------------------------------------------------------
    def check_text(self, text: str, what: str = "text") -> str:
        """Refuse, in one sentence, what this model cannot read."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"The {what} is empty.")
        words = self.tokenizer.encode(text)
        limit = min(MAX_QUESTION_WORDS, self.net.config.decoder.context_length - 4)
        if len(words) > limit:
            raise ValueError(f"The {what} is too long: {len(words)} words, at most {limit}.")
        unknown = self.tokenizer.unknown_words(text)
        if unknown:
            listed = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
            raise ValueError(f"The model does not know the word(s) {listed}; it knows only Shapes World words.")
        return text

    def _pixels(self, images) -> torch.Tensor:
        return preprocess(images, self.net.config.vision).to(self.device)

    def _ids(self, texts: list[str]) -> torch.Tensor:
        ids, _ = self.tokenizer.batch(texts, self.net.config.text.context_length)
        return ids.to(self.device)

    # --- the public API ---------------------------------------------------------------------
    @torch.no_grad()
    def embed_images(self, images, batch_size: int = 256) -> np.ndarray:
        """float32 (N, embed_dim), L2-normalised rows."""
        out = []
        for i in range(0, len(images), batch_size):
            with autocast(self.device):
                emb = self.net.encode_image(self._pixels(images[i : i + batch_size])).embedding
            out.append(F.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        """float32 (N, embed_dim), L2-normalised rows."""
        texts = [self.check_text(t) for t in texts]
        out = []
        for i in range(0, len(texts), batch_size):
            with autocast(self.device):
                emb = self.net.encode_text(self._ids(texts[i : i + batch_size]))[0]
            out.append(F.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    @torch.no_grad()
    def caption(self, image, num_beams: int = 1, max_length: int = 30, use_cache: bool = True) -> str:
        return self.caption_many([image], num_beams, max_length, use_cache)[0]

    @torch.no_grad()
    def caption_many(self, images, num_beams: int = 1, max_length: int = 30, use_cache: bool = True) -> list[str]:
        if not 1 <= num_beams <= 16:
            raise ValueError(f"num_beams must be between 1 and 16, got {num_beams}.")
        max_length = max(1, min(int(max_length), self.net.config.decoder.context_length - 1))
        tokens = self._image_tokens(images)
        prompts = [[self.tokenizer.bos_id]] * len(images)
        ids = self._generate(tokens, prompts, max_length, num_beams, use_cache)
        return [self.tokenizer.decode(r) for r in ids]

    def answer(self, image, question: str) -> str:
        return self.answer_many([image], [question])[0]

    @torch.no_grad()
    def answer_many(self, images, questions: list[str]) -> list[str]:
        tokens = self._image_tokens(images)
        ids = self._generate(tokens, [self._qa_prompt(q) for q in questions], 4, 1, True)
        return [self.tokenizer.decode(r) for r in ids]

    @torch.no_grad()
    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely first answer words with their probabilities."""
        prompt = torch.tensor([self._qa_prompt(question)], device=self.device)
        with autocast(self.device):
            logits = self.net.decoder(prompt, self._image_tokens([image])).logits[0, -1]
        probs = logits.float().softmax(-1)
        tok = self.tokenizer
        probs[[tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id, tok.unk_id]] = 0.0  # words only
        top = probs.topk(k)
        return [(self.tokenizer.decode([i]), float(p)) for p, i in zip(top.values, top.indices)]

    def match(self, image, text: str) -> float:
        """Probability (ITM head) that `text` describes `image`."""
        return float(self.match_many(image, [text])[0])

    @torch.no_grad()
    def match_many(self, image, texts: list[str]) -> np.ndarray:
        texts = [self.check_text(t) for t in texts]
        tokens = self._image_tokens([image])
        ids = self._ids(texts)
        with autocast(self.device):
            logits = self.net.match_logits(ids, tokens.expand(len(texts), -1, -1))
        return logits.float().softmax(-1)[:, 1].cpu().numpy()

    @torch.no_grad()
    def match_pairs(self, images, texts: list[str]) -> np.ndarray:
        """ITM probability of each (image, text) pair."""
        ids = self._ids([self.check_text(t) for t in texts])
        with autocast(self.device):
            logits = self.net.match_logits(ids, self._image_tokens(images))
        return logits.float().softmax(-1)[:, 1].cpu().numpy()

    @torch.no_grad()
    def attention(self, image, text: str | None = None, num_beams: int = 1) -> AttentionMaps:
        """Vision self-attention per layer; the decoder's attention behind each word of `text`
        (or of the caption it generates when `text` is None); attention rollout via the maps."""
        pixels = self._pixels([image])
        image_out = self.net.encode_image(pixels, need_weights=True)
        if text is None:
            words = self._generate(image_out.tokens, [[self.tokenizer.bos_id]], 30, num_beams, True)[0]
        else:
            words = self.tokenizer.encode(self.check_text(text))
        ids = torch.tensor([[self.tokenizer.bos_id] + words], device=self.device)
        out = self.net.decoder(ids, image_out.tokens, need_weights=True)
        n = len(words)
        # word i is predicted at position i (the position before it): its cross-attention is row i
        cross = [c[0, :, :n].float().cpu().numpy() for c in out.cross_attentions]
        text_self = [a[0, :, 1 : n + 1, 1 : n + 1].float().cpu().numpy() for a in out.self_attentions]
        vision = self.net.config.vision
        shown = pixels_to_image(pixels[0], vision.mean, vision.std)
        return AttentionMaps(
            image=shown,
            grid=self.net.config.vision.grid,
            vision=[a[0].float().cpu().numpy() for a in image_out.attentions],
            tokens=[self.tokenizer.decode([w]) for w in words],
            cross=cross,
            text=text_self,
        )

    def classify(self, image, labels: list[str], templates: list[str] | None = None) -> dict[str, float]:
        """Zero-shot: softmax over the ITC similarity of the image to each label's texts."""
        templates = templates or ["{}"]
        if not labels:
            raise ValueError("Give at least one label.")
        img = self.embed_images([image])[0]
        texts = self.embed_texts([t.format(label) for label in labels for t in templates])
        per_label = texts.reshape(len(labels), len(templates), -1).mean(1)
        per_label /= np.linalg.norm(per_label, axis=-1, keepdims=True)
        logits = self.net.logit_scale.detach().exp().item() * per_label @ img
        p = np.exp(logits - logits.max())
        return dict(zip(labels, (p / p.sum()).tolist()))

    # --- helpers ----------------------------------------------------------------------------
    def _image_tokens(self, images) -> torch.Tensor:
        with autocast(self.device):
            return self.net.encode_image(self._pixels(images)).tokens

    def _qa_prompt(self, question: str) -> list[int]:
        q = self.tokenizer.encode(self.check_text(question, "question"))
        return [self.tokenizer.bos_id] + q + [self.tokenizer.sep_id]

    def _generate(self, tokens, prompts, max_new, num_beams, use_cache) -> list[list[int]]:
        limit = self.net.config.decoder.context_length - max(len(p) for p in prompts)
        with autocast(self.device):
            return generate(
                self.net.decoder, tokens, prompts, self.tokenizer.eos_id, self.tokenizer.pad_id,
                min(max_new, limit), num_beams, use_cache,
            )


@contextmanager
def atomic_folder(path):
    """Yield a temporary folder beside `path`; when the block succeeds it replaces `path` whole.

    A crash half-way leaves the old folder as it was (and no half-written one in its place).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(net: VLP, tokenizer: Tokenizer, path, metrics: dict | None = None, extra: dict | None = None) -> None:
    """config.json + model.safetensors + tokenizer.json (+ metrics.json), written atomically."""
    with atomic_folder(path) as tmp:
        write_checkpoint(net, tokenizer, tmp, metrics, extra)


def write_checkpoint(net: VLP, tokenizer: Tokenizer, folder: Path, metrics: dict | None = None,
                     extra: dict | None = None) -> None:
    """The checkpoint files, into an existing folder."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    config = {"format": "vlp-1", "model": net.config.to_dict(), **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save(folder / "tokenizer.json")
    if metrics:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
