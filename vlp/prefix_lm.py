"""LLM-style fusion, for lesson 5: image tokens as a prefix to a causal decoder.

The Frozen / LLaVA recipe: the image encoder's tokens go through a small projector (a 2-layer
MLP) into the decoder's width and are put in front of the text; one causal transformer reads
[image tokens; text] and predicts the next word. No cross-attention: the text reaches the
image through ordinary self-attention over the prefix. vlp's own model (`vlp.model.VLP`)
instead keeps the text in its own stream and cross-attends to the image in every block.

`PrefixLM` has the shape of `VLP` where captions and answers are concerned (`encode_image`,
`decoder(ids, image_tokens, …)`, `lm_loss`), so the same losses (`fusion_losses`), the same
decoding (`vlp.generate.generate`, greedy) and the same measurements (`caption_accuracy`,
`vqa_accuracy`) run on both. `prefix_config_for("tiny", …)` sizes it to VLP tiny's parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlp import world
from vlp.data import scene_pixels
from vlp.generate import generate
from vlp.layers import BlockCaches, Transformer, causal_mask
from vlp.model import SIZES, VLP, Batch, config_for
from vlp.text import DecoderOutput
from vlp.tokenizer import Tokenizer
from vlp.vision import VisionConfig, VisionOutput, VisionTransformer


@dataclass
class PrefixConfig:
    vision: VisionConfig  # the image encoder: the same ViT as vlp's model
    vocab_size: int  # tokenizer size
    width: int = 128  # decoder width
    layers: int = 6  # causal blocks; 6 at width 128 gives VLP tiny's parameter count
    heads: int = 4
    mlp_ratio: float = 4.0
    context_length: int = 40  # longest text: question, answer and special tokens


def prefix_config_for(size: str, vocab_size: int) -> PrefixConfig:
    """The prefix model with the parameters of VLP `size`: the same ViT, and the text encoder's
    and the decoder's blocks (their cross-attention included) spent on a deeper causal decoder."""
    s = SIZES[size]
    vision = config_for(size, vocab_size, eos_id=2).vision
    return PrefixConfig(vision, vocab_size, width=s["width"], layers=s["text_layers"] + s["decoder_layers"] + 1,
                        heads=s["heads"])


class PrefixDecoder(nn.Module):
    """Causal transformer over [projected image tokens; text]; logits for the text positions.

    Called like `vlp.text.MultimodalDecoder`, so `vlp.generate.generate` decodes with it: with a
    cache, the first call puts the image prefix in and later calls add one word each.
    """

    def __init__(self, config: PrefixConfig):
        super().__init__()
        self.config = config
        w = config.width
        # the projector: image tokens into the decoder's width (LLaVA-1.5's 2-layer MLP)
        self.projector = nn.Sequential(nn.Linear(config.vision.width, w), nn.GELU(), nn.Linear(w, w))
        self.token_embedding = nn.Embedding(config.vocab_size, w)
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # small: the output layer shares it
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(config.context_length, w))
        self.transformer = Transformer(w, config.layers, config.heads, config.mlp_ratio)
        self.ln_final = nn.LayerNorm(w)

    def new_caches(self) -> list[BlockCaches]:
        return self.transformer.new_caches()

    def forward(
        self,
        ids: torch.Tensor,
        image_tokens: torch.Tensor,
        keep: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
        caches: list[BlockCaches] | None = None,
    ) -> DecoderOutput:
        """Decode `ids` (B, T) after the image prefix `image_tokens` (B, N, vision width).

        Args:
            keep: left padding is not supported (prompts of one length, or right-padded ones,
                which causal attention hides); must be None.
            positions: (B, T) text positions; default 0 … T−1 after the cached words.
            caches: per-block KV caches; the prefix enters them on the first call.
        """
        assert keep is None, "the prefix decoder reads unpadded or right-padded prompts only"
        b, t = ids.shape
        n = image_tokens.shape[1]
        past = caches[0].self_attn.length if caches else 0  # cached positions, prefix included
        with_prefix = past == 0
        words_past = past - n if past else 0
        if positions is None:
            positions = torch.arange(words_past, words_past + t, device=ids.device).expand(b, t)  # (B, T)
        x = self.token_embedding(ids) + self.positional_embedding[positions]  # (B, T, width)
        if with_prefix:
            x = torch.cat([self.projector(image_tokens), x], dim=1)  # (B, N + T, width)
        length = x.shape[1]
        mask = causal_mask(length, past + length, device=ids.device) if length > 1 else None
        x, self_ws, _ = self.transformer(x, mask=mask, need_weights=need_weights, caches=caches)
        x = self.ln_final(x[:, n:] if with_prefix else x)  # (B, T, width): the text positions
        logits = x @ self.token_embedding.weight.T  # (B, T, vocab)
        return DecoderOutput(x, logits, self_ws)


class PrefixLM(nn.Module):
    """ViT → projector → prefix of a causal decoder: captions and answers, as `VLP` gives them."""

    def __init__(self, config: PrefixConfig, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.visual = VisionTransformer(config.vision)
        self.decoder = PrefixDecoder(config)

    def encode_image(self, pixels: torch.Tensor, need_weights: bool = False) -> VisionOutput:
        return self.visual(pixels, need_weights)

    def lm_loss(self, ids: torch.Tensor, image_tokens: torch.Tensor, predict: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy where `predict` marks the tokens to be predicted (as `VLP.lm_loss`)."""
        logits = self.decoder(ids[:, :-1], image_tokens).logits  # (B, L − 1, vocab)
        targets = ids[:, 1:].masked_fill(~predict[:, 1:], -100)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def fusion_losses(net: VLP | PrefixLM, batch: Batch) -> dict[str, torch.Tensor]:
    """Captioning and VQA losses of either model on one batch."""
    tokens = net.encode_image(batch.pixels).tokens
    return {
        "caption": net.lm_loss(batch.captions, tokens, batch.captions != net.pad_id),
        "vqa": net.lm_loss(batch.qa, tokens[batch.qa_images], batch.answer_mask),
    }


def fusion_step(net: VLP | PrefixLM, optimizer: torch.optim.Optimizer, batch: Batch) -> dict[str, float]:
    """One AdamW step on the sum of the captioning and VQA losses; the losses by name."""
    losses = fusion_losses(net, batch)
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    return {k: v.item() for k, v in losses.items()}


@torch.no_grad()
def captions(net: VLP | PrefixLM, pixels: torch.Tensor, tokenizer: Tokenizer, max_words: int = 24) -> list[str]:
    """Greedy captions, with the KV cache."""
    tokens = net.encode_image(pixels).tokens
    ids = generate(net.decoder, tokens, [[tokenizer.bos_id]] * len(pixels), tokenizer.eos_id,
                   tokenizer.pad_id, max_new_tokens=max_words)
    return [tokenizer.decode(row) for row in ids]


@torch.no_grad()
def answers(net: VLP | PrefixLM, pixels: torch.Tensor, questions: list[str], tokenizer: Tokenizer) -> list[str]:
    """The most likely one-word answer of the world's answer vocabulary after [BOS] question [SEP]
    (read in one pass, as vlp's API reads them). `pixels` has one row per question."""
    prompts = [[tokenizer.bos_id, *tokenizer.encode(q), tokenizer.sep_id] for q in questions]
    ids = torch.full((len(prompts), max(map(len, prompts))), tokenizer.pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = torch.tensor(prompt)  # right-padded: causal attention never sees it
    logits = net.decoder(ids, net.encode_image(pixels).tokens).logits  # (B, T, vocab)
    last = logits[torch.arange(len(prompts)), torch.tensor([len(p) - 1 for p in prompts])]  # (B, vocab)
    vocabulary = world.all_answers()
    answer_ids = torch.tensor([tokenizer.encode(a)[0] for a in vocabulary])
    return [vocabulary[i] for i in last[:, answer_ids].argmax(-1).tolist()]


def eval_scenes(split: str, n: int, vision: VisionConfig) -> tuple[list[world.Scene], torch.Tensor]:
    """The first `n` scenes of `split` and their pixels, normalised for the ViT."""
    scenes = world.scenes(split, n)
    return scenes, scene_pixels(scenes, vision)


def caption_accuracy(net: VLP | PrefixLM, scenes, pixels, tokenizer: Tokenizer, batch_size: int = 100) -> float:
    """Share of greedy captions that parse back to exactly their scene (docs/world.md's rule)."""
    said = [c for i in range(0, len(scenes), batch_size) for c in captions(net, pixels[i : i + batch_size], tokenizer)]
    return float(np.mean([world.caption_correct(c, s) for c, s in zip(said, scenes)]))


def vqa_accuracy(net: VLP | PrefixLM, scenes, pixels, tokenizer: Tokenizer, seed: int = 7) -> dict[str, float]:
    """Accuracy over one question of each type a scene allows, overall and for relations."""
    rng = np.random.default_rng(seed)
    rows, questions, truths, types = [], [], [], []
    for i, scene in enumerate(scenes):
        for qtype in world.question_types(scene):
            q, a, t = world.sample_question(scene, rng, qtype)
            rows.append(i)
            questions.append(q)
            truths.append(a)
            types.append(t)
    said = []
    for i in range(0, len(rows), 200):
        said += answers(net, pixels[rows[i : i + 200]], questions[i : i + 200], tokenizer)
    right = np.array([s == a for s, a in zip(said, truths)])
    relation = np.array([t == "relation" for t in types])
    return {"vqa": float(right.mean()), "vqa relation": float(right[relation].mean()) if relation.any() else float("nan")}
