"""`VLPModel`: vlp's own network behind the model protocol (vlp/protocol.py).

It holds the network, its tokenizer and its device, turns user input (images of any kind,
free text) into tensors, and answers in plain Python types. Checkpoints are folders of
`config.json`, `model.safetensors`, `tokenizer.json` and `metrics.json` (vlp/checkpoint.py).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from vlp.attention import AttentionMaps
from vlp.checkpoint import fingerprint, read_checkpoint, save_checkpoint
from vlp.device import autocast, pick_device
from vlp.errors import BadArgument, BadText, UnknownWords
from vlp.generate import generate
from vlp.images import load_image, pixels_to_image, preprocess
from vlp.limits import MAX_QUESTION_CHARS, MAX_QUESTION_WORDS, check_beams, check_max_length, check_text
from vlp.model import VLP
from vlp.protocol import REAL_WEIGHTS, Capabilities, ModelBase
from vlp.tokenizer import Tokenizer
from vlp.world import all_answers, answer_set, likeness

TOKEN_CACHE = 16  # images whose encoder output is kept (see VLPModel._image_tokens)
SCORED_ROWS = 512  # (question, candidate answer) rows per pass when answers are scored whole
WEAK_RELATION = 0.9  # a direction the card names as read poorly: below this balanced accuracy on test


class VLPModel(ModelBase):
    """A vlp network with its tokenizer, on one device.

    Args:
        net: the VLP network; tokenizer: its tokenizer.
        spec: the name it was loaded by ("vlp-tiny", a path, …).
        metrics: measured metrics to show on its card (from metrics.json).
    """

    capabilities = Capabilities(caption=True, answer=True, match="probability", embed=True, attention=True)

    def __init__(self, net: VLP, tokenizer: Tokenizer, spec: str = "vlp", metrics: dict | None = None, device="auto"):
        self.device = pick_device(device) if isinstance(device, (str, type(None))) else device
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.metrics = metrics or {}
        self.fingerprint = fingerprint(net.state_dict())
        self.embed_dim = net.config.vision.embed_dim
        # What an answer can be: the whole answer set (phrases like 'there is no square' included)
        # for a model whose tokenizer spells all of it, i.e. one trained on people's phrasings;
        # else, as for the older checkpoints, the one-word answers its tokenizer knows.
        spelt = [a for a in answer_set() if not tokenizer.unknown_words(a)]
        self.answers = spelt if len(spelt) == len(answer_set()) else [a for a in all_answers() if a in spelt]
        self._answer_tokens = [tokenizer.encode(a) for a in self.answers]
        self._one_word = all(len(t) == 1 for t in self._answer_tokens)
        self._token_cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()  # see _image_tokens
        self._cache_lock = threading.Lock()

    # --- checkpoints ------------------------------------------------------------------------
    @classmethod
    def load(cls, path, device="auto", spec: str | None = None) -> "VLPModel":
        net, tokenizer, metrics = read_checkpoint(path)
        return cls(net, tokenizer, spec or Path(path).name, metrics, device)

    def save(self, path, extra_config: dict | None = None) -> None:
        """Write the checkpoint folder atomically (see vlp/checkpoint.py)."""
        save_checkpoint(self.net, self.tokenizer, path, self.metrics, extra_config)

    def card(self) -> dict:
        by_direction = (self.metrics.get("test") or {}).get("relation_by_direction", {})
        weak = [f"{direction} {score:.0%}" for direction, score in by_direction.items() if score < WEAK_RELATION]
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
            ] + ([f"It reads some relations poorly: {', '.join(weak)} right (balanced accuracy over every pair "
                  "of the test split's scenes; 'is the red circle below the blue square?')."] if weak else []),
        }

    def vocabulary(self) -> list[str]:
        return self.tokenizer.words()

    def domain_notice(self, image) -> str | None:
        """A sentence when `image` does not look like a Shapes World scene (`vlp.world.likeness`)."""
        seen = likeness(load_image(image))
        if seen.score >= 1.0:
            return None
        return (f"This does not look like a Shapes World scene (likeness {seen.score:.2f} of 1): {self.spec} knows "
                "only circles, squares, triangles and diamonds on a plain background, so its words here mean little. "
                f"For photos, load real weights: `python app.py {REAL_WEIGHTS}` "
                "(on a Space: the variables VLP_MODEL and VLP_CAPTIONER).")

    def vision_shape(self) -> tuple[int, int]:
        vision = self.net.config.vision
        return vision.layers, vision.heads

    # --- input checks -----------------------------------------------------------------------
    @property
    def max_text_words(self) -> int:
        """The longest sentence it matches or embeds: the text context less [BOS] and [EOS]."""
        return self.net.config.text.context_length - 2

    def check_text(self, text: str, what: str = "text", max_words: int | None = None) -> str:
        """`text` if this model can read it (at most `max_words`, default `max_text_words`);
        else BadText or UnknownWords, one sentence."""
        text = check_text(text, what, MAX_QUESTION_CHARS)
        words = self.tokenizer.encode(text)
        limit = max_words or self.max_text_words
        if len(words) > limit:
            raise BadText(f"The {what} is too long: {len(words)} words, at most {limit}.")
        unknown = self.tokenizer.unknown_words(text)
        if unknown:
            raise UnknownWords(unknown, what)
        return text

    def _pixels(self, images) -> torch.Tensor:
        return preprocess(images, self.net.config.vision).to(self.device)

    def _ids(self, texts: list[str]) -> torch.Tensor:
        ids, _ = self.tokenizer.batch(texts, self.net.config.text.context_length)
        return ids.to(self.device)

    # --- the protocol -----------------------------------------------------------------------
    def embed_images(self, images, batch_size: int = 256) -> np.ndarray:
        """float32 (N, embed_dim), L2-normalised rows."""
        return self.embed_in_batches(list(images), lambda chunk: self.net.encode_image(self._pixels(chunk)).embedding,
                                     batch_size)

    def embed_texts(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        """float32 (N, embed_dim), L2-normalised rows."""
        texts = [self.check_text(t) for t in ([texts] if isinstance(texts, str) else texts)]
        return self.embed_in_batches(texts, lambda chunk: self.net.encode_text(self._ids(chunk)).embedding, batch_size)

    def logit_scale(self) -> float:
        return float(self.net.logit_scale.detach().exp())

    def caption(self, image, num_beams: int = 1, max_length: int = 30) -> str:
        return self.caption_many([image], num_beams, max_length)[0]

    @torch.no_grad()
    def caption_many(self, images, num_beams: int = 1, max_length: int = 30, use_cache: bool = True) -> list[str]:
        num_beams, max_length = check_beams(num_beams), check_max_length(max_length)
        max_length = min(max_length, self.max_text_words)  # a caption it can read back (match, embed)
        tokens = self._image_tokens(images)
        prompts = [[self.tokenizer.bos_id]] * len(images)
        ids = self._generate(tokens, prompts, max_length, num_beams, use_cache)
        return [self.tokenizer.decode(r) for r in ids]

    def answer(self, image, question: str) -> str:
        return self.answer_many([image], [question])[0]

    def answer_many(self, images, questions: list[str]) -> list[str]:
        """The most likely member of the answer set (`self.answers`) for each question: answers
        are scored, not generated, so they are always an answer ("blue", "there is no square"),
        never a fragment (", a large")."""
        probs = self._answer_probs(images, questions)
        return [self.answers[i] for i in probs.argmax(-1).tolist()]

    def answer_scores(self, image, question: str, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely answers with their probabilities (over the answer set)."""
        return self.answer_scores_many([image], [question], k)[0]

    def answer_scores_many(self, images, questions: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
        """`answer_scores` of each (image, question), scored in one batch; each list's first
        answer is `answer_many`'s."""
        top = self._answer_probs(images, questions).topk(min(k, len(self.answers)), dim=-1)
        return [[(self.answers[i], float(p)) for p, i in zip(ps, idx)]
                for ps, idx in zip(top.values.tolist(), top.indices.tolist())]

    @torch.no_grad()
    def _answer_probs(self, images, questions: list[str]) -> torch.Tensor:
        """(B, len(answers)) p(answer | image, question), renormalised over the answer set.

        One-word answers only (older checkpoints): the decoder's next-word distribution after
        [BOS] question [SEP], in one pass. Otherwise each candidate is scored whole, teacher-forced:
        log p(its words and [EOS]), so 'top' and 'top left' are told apart exactly."""
        if len(images) != len(questions):
            raise BadArgument(f"Give one question per image: {len(images)} images, {len(questions)} questions.")
        prompts = [self._qa_prompt(q) for q in questions]
        tokens = self._image_tokens(images)
        if not self._one_word:
            return self._scored_answers(tokens, prompts).softmax(-1).cpu()
        logits = self._decode(prompts, tokens)  # (B, T, vocab)
        last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        logits = logits[torch.arange(len(prompts), device=self.device), last]  # (B, vocab) after [SEP]
        first = torch.tensor([t[0] for t in self._answer_tokens], device=self.device)
        return logits[:, first].float().softmax(-1).cpu()

    def _decode(self, rows: list[list[int]], image_tokens: torch.Tensor) -> torch.Tensor:
        """(R, T, vocab) float logits of right-padded rows: causal attention never sees the padding."""
        ids = torch.full((len(rows), max(map(len, rows))), self.tokenizer.pad_id, dtype=torch.long)
        for row, tokens in enumerate(rows):
            ids[row, : len(tokens)] = torch.tensor(tokens)
        with autocast(self.device):
            return self.net.decoder(ids.to(self.device), image_tokens).logits.float()

    @torch.no_grad()
    def _scored_answers(self, image_tokens: torch.Tensor, prompts: list[list[int]]) -> torch.Tensor:
        """(B, len(answers)) log p(answer words, [EOS] | image, prompt), each candidate teacher-forced.

        A few questions at a time: their prompts are decoded once (left-padded, as `generate` does)
        into the KV caches, which every candidate of that question then continues in one pass."""
        pad, eos, count = self.tokenizer.pad_id, self.tokenizer.eos_id, len(self._answer_tokens)
        width = max(map(len, self._answer_tokens))
        words = torch.full((count, width), pad, dtype=torch.long)
        targets = torch.full((count, width + 1), pad, dtype=torch.long)  # step 0: the word after [SEP]
        for i, tokens in enumerate(self._answer_tokens):
            words[i, : len(tokens)] = torch.tensor(tokens)
            targets[i, : len(tokens) + 1] = torch.tensor(tokens + [eos])
        words, targets = words.to(self.device), targets.to(self.device)
        decoder, out = self.net.decoder, []
        per_pass = max(1, SCORED_ROWS // count)
        for start in range(0, len(prompts), per_pass):
            chunk, images = prompts[start : start + per_pass], image_tokens[start : start + per_pass]
            b = len(chunk)
            ids = torch.full((b, max(map(len, chunk))), pad, dtype=torch.long)
            for row, prompt in enumerate(chunk):
                ids[row, ids.shape[1] - len(prompt) :] = torch.tensor(prompt)
            ids = ids.to(self.device)
            keep = ids != pad
            positions = (keep.long().cumsum(1) - 1).clamp(min=0)
            caches = decoder.new_caches()
            with autocast(self.device):
                first = decoder(ids, images, keep=keep, positions=positions, caches=caches).logits[:, -1]
                for block in caches:  # every candidate continues its question's prompt
                    for cache in (block.self_attn, block.cross_attn):
                        cache.k, cache.v = cache.k.repeat_interleave(count, 0), cache.v.repeat_interleave(count, 0)
                rest = decoder(words.repeat(b, 1), images.repeat_interleave(count, 0),
                               keep=torch.cat([keep.repeat_interleave(count, 0), words.repeat(b, 1) >= 0], 1),
                               positions=positions[:, -1:].repeat_interleave(count, 0) + 1
                               + torch.arange(width, device=self.device), caches=caches).logits
            logp = torch.cat([first.repeat_interleave(count, 0)[:, None], rest], 1).float().log_softmax(-1)
            wanted = targets.repeat(b, 1)  # (b·count, width + 1)
            picked = logp.gather(-1, wanted[..., None])[..., 0] * (wanted != pad)
            out.append(picked.sum(1).view(b, count))
        return torch.cat(out)

    def match(self, image, text: str) -> float:
        """Probability (ITM head) that `text` describes `image`."""
        return float(self.match_many(image, [text])[0])

    def match_many(self, image, texts: list[str]) -> np.ndarray:
        """`match` for each text; the image is encoded once. float32 (N,)."""
        texts = [self.check_text(t) for t in texts]
        one_image = torch.zeros(len(texts), dtype=torch.long, device=self.device)  # its keys and values projected once
        return self._match(self._image_tokens([image]), texts, one_image)

    def match_pairs(self, images, texts: list[str]) -> np.ndarray:
        """ITM probability of each (image, text) pair. float32 (N,)."""
        texts = [self.check_text(t) for t in texts]
        return self._match(self._image_tokens(images), texts)

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
        return AttentionMaps(
            image=pixels_to_image(pixels[0], vision.mean, vision.std),
            grid=vision.grid,
            vision=[a[0].float().cpu().numpy() for a in image_out.attentions],
            tokens=[self.tokenizer.decode([w]) for w in words],
            cross=cross,
            text=text_self,
        )

    # --- helpers ----------------------------------------------------------------------------
    @torch.no_grad()
    def _image_tokens(self, images) -> torch.Tensor:
        """(B, 1 + grid², width) image tokens. The last TOKEN_CACHE images are kept, keyed by their
        pixels, so a caption and its score, or an answer and its top words, encode each image once:
        for one request or for a batch of the demo's requests (a larger batch is not cached)."""
        pixels = self._pixels(images)
        if not 0 < len(pixels) <= TOKEN_CACHE:
            with autocast(self.device):
                return self.net.encode_image(pixels).tokens
        keys = [hashlib.blake2b(p.cpu().numpy().tobytes(), digest_size=16).digest() for p in pixels]
        with self._cache_lock:
            rows = {key: self._token_cache[key] for key in keys if key in self._token_cache}
            for key in rows:
                self._token_cache.move_to_end(key)
        missing = list(dict.fromkeys(key for key in keys if key not in rows))  # each new image once
        if missing:
            first = [keys.index(key) for key in missing]
            with autocast(self.device):
                tokens = self.net.encode_image(pixels[first]).tokens
            rows.update(zip(missing, (row.clone() for row in tokens)))  # not views that keep the batch
            with self._cache_lock:
                self._token_cache.update((key, rows[key]) for key in missing)
                while len(self._token_cache) > TOKEN_CACHE:
                    self._token_cache.popitem(last=False)
        return torch.stack([rows[key] for key in keys])

    @torch.no_grad()
    def _match(self, image_tokens: torch.Tensor, texts: list[str], image_rows: torch.Tensor | None = None
               ) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.float32)
        with autocast(self.device):
            logits = self.net.match_logits(self._ids(texts), image_tokens, image_rows)
        return logits.float().softmax(-1)[:, 1].cpu().numpy()

    def _qa_prompt(self, question: str) -> list[int]:
        limit = min(MAX_QUESTION_WORDS, self.net.config.decoder.context_length - 3)  # [BOS] … [SEP] answer
        q = self.tokenizer.encode(self.check_text(question, "question", limit))
        return [self.tokenizer.bos_id] + q + [self.tokenizer.sep_id]

    def _generate(self, tokens, prompts, max_new, num_beams, use_cache) -> list[list[int]]:
        limit = self.net.config.decoder.context_length - max(len(p) for p in prompts)
        with autocast(self.device):
            return generate(
                self.net.decoder, tokens, prompts, self.tokenizer.eos_id, self.tokenizer.pad_id,
                min(max_new, limit), num_beams, use_cache,
            )
