"""Text: the text encoder (for contrastive learning) and the multimodal decoder.

The decoder reads text causally and cross-attends to the image tokens; it captions, answers
questions (the question as a prefix) and, from its hidden state at the end token, judges
whether a text matches an image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from vlp.layers import BlockCaches, KVCache, Transformer, causal_mask, combine_masks, padding_mask


@dataclass
class TextConfig:
    vocab_size: int  # tokenizer size
    context_length: int = 32  # longest sequence, special tokens included
    width: int = 128  # transformer width
    layers: int = 2  # transformer blocks
    heads: int = 4  # attention heads per block
    mlp_ratio: float = 4.0  # MLP hidden width over `width`
    embed_dim: int = 128  # size of the projected, pooled text embedding
    causal: bool = False  # CLIP's text tower is causal; vlp-tiny's encoder reads both ways
    quick_gelu: bool = False  # OpenAI's CLIP weights were trained with QuickGELU
    eos_id: int = 2  # the embedding is read at the first end token


@dataclass
class TextOutput:
    tokens: torch.Tensor  # (B, T, width) after ln_final
    embedding: torch.Tensor  # (B, embed_dim) projected end token, not normalised
    attentions: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, T, T)


class TextEncoder(nn.Module):
    """Token + position embeddings, blocks, final LN; the embedding is read at the end token.

    Names are CLIP's (`token_embedding`, `positional_embedding`, `transformer`, `ln_final`,
    `text_projection`), so CLIP's text weights load by name.
    """

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.token_embedding = nn.Embedding(config.vocab_size, w)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(config.context_length, w))
        self.transformer = Transformer(
            w, config.layers, config.heads, config.mlp_ratio, quick_gelu=config.quick_gelu
        )
        self.ln_final = nn.LayerNorm(w)
        self.text_projection = nn.Parameter(w**-0.5 * torch.randn(w, config.embed_dim))

    def forward(self, ids: torch.Tensor, keep: torch.Tensor | None = None, need_weights: bool = False) -> TextOutput:
        """Encode ids (B, T); `keep` (B, T) is True for real tokens (None: every token is)."""
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:t]  # (B, T, width)
        mask = causal_mask(t, device=ids.device) if self.config.causal else None  # (T, T)
        if keep is not None:
            mask = combine_masks(mask, padding_mask(keep))  # (B, 1, T, T), or (B, 1, 1, T) without causal
        x, attentions, _ = self.transformer(x, mask=mask, need_weights=need_weights)
        x = self.ln_final(x)
        embedding = at_end_token(x, ids, self.config.eos_id) @ self.text_projection  # (B, embed_dim)
        return TextOutput(tokens=x, embedding=embedding, attentions=attentions)


def at_end_token(x: torch.Tensor, ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Each row of x (B, T, width) at its first end token in ids (B, T) → (B, width)."""
    end = (ids == eos_id).int().argmax(dim=-1)  # (B,)
    return x[torch.arange(x.shape[0], device=x.device), end]


@dataclass
class DecoderConfig:
    vocab_size: int  # tokenizer size
    context_length: int = 40  # longest sequence: question, answer and special tokens
    width: int = 128  # transformer width
    layers: int = 3  # blocks, each with causal self-attention and cross-attention
    heads: int = 4  # attention heads per block
    mlp_ratio: float = 4.0  # MLP hidden width over `width`
    image_width: int = 128  # width of the image tokens it cross-attends to


@dataclass
class DecoderOutput:
    hidden: torch.Tensor  # (B, T, width) after ln_final
    logits: torch.Tensor  # (B, T, vocab) next-token scores
    self_attentions: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, T, S), S = cached + T
    cross_attentions: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, T, image tokens)


class MultimodalDecoder(nn.Module):
    """Causal text transformer whose blocks also cross-attend to the image tokens.

    The output layer shares its weights with the token embedding.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.token_embedding = nn.Embedding(config.vocab_size, w)
        nn.init.normal_(self.token_embedding.weight, std=0.02)  # small: the output layer shares it
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(config.context_length, w))
        self.image_proj = (
            nn.Identity() if config.image_width == w else nn.Linear(config.image_width, w)
        )
        self.transformer = Transformer(w, config.layers, config.heads, config.mlp_ratio, cross_attention=True)
        self.ln_final = nn.LayerNorm(w)

    def new_caches(self) -> list[BlockCaches]:
        return self.transformer.new_caches()

    def project_images(self, image_tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each block's cross-attention keys and values of `image_tokens` (C, N, image_width),
        projected once for several passes over the same images (`caches_reading`)."""
        context = self.image_proj(image_tokens)  # (C, N, width)
        return [block.cross_attn.context_keys_values(context) for block in self.transformer.resblocks]

    def caches_reading(self, projected: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor) -> list[BlockCaches]:
        """Caches whose cross-attention holds, for row i, image rows[i]'s keys and values from
        `project_images`: a pass given them projects nothing (training's ITM pairs, captions
        and questions read the same images, packed by image: `vlp.packing`)."""
        if len(rows) == len(projected[0][0]) and torch.equal(rows, torch.arange(len(rows), device=rows.device)):
            return [BlockCaches(KVCache(), KVCache(k, v)) for k, v in projected]  # row i reads image i: no copy
        # index_select, not k[rows]: its backward (index_add) is ≈ 5× faster on the CPU
        return [BlockCaches(KVCache(), KVCache(k.index_select(0, rows), v.index_select(0, rows))) for k, v in projected]

    def forward(
        self,
        ids: torch.Tensor,
        image_tokens: torch.Tensor,
        keep: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
        caches: list[BlockCaches] | None = None,
        texts: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Decode `ids` (B, T) against `image_tokens` (B, N, image_width).

        Args:
            keep: (B, S) True for real tokens over all S positions seen so far (cache included);
                needed only for left-padded batches (right padding is hidden by causality).
            positions: (B, T) position of each token; default 0 … T−1 after the cached ones.
            caches: per-block KV caches for incremental decoding (see `new_caches`), or
                caches already holding each row's image keys and values (`caches_reading`).
            texts: (B, T) which text each token belongs to, when several texts are packed in
                one row (`vlp.packing`): a token then sees the earlier tokens of its own text only.
        """
        t = ids.shape[1]  # T new tokens, after `past` cached ones: S = past + T keys in all
        past = caches[0].self_attn.length if caches else 0
        if positions is None:
            positions = torch.arange(past, past + t, device=ids.device).expand(ids.shape[0], t)  # (B, T)
        x = self.token_embedding(ids) + self.positional_embedding[positions]  # (B, T, width)
        # one new token may see every earlier one: no mask needed (the common decoding step)
        mask = causal_mask(t, past + t, device=ids.device) if t > 1 else None  # (T, S)
        if texts is not None:
            mask = combine_masks(mask, (texts[:, :, None] == texts[:, None, :])[:, None])  # (B, 1, T, T)
        if keep is not None:
            # A padding query keeps its causal view: a row with no key would make softmax NaN.
            is_pad_query = ~keep[:, past : past + t, None]  # (B, T, 1)
            visible = padding_mask(keep) | is_pad_query[:, None]  # (B, 1, 1, S) | (B, 1, T, 1) → (B, 1, T, S)
            mask = combine_masks(mask, visible)  # (B, 1, T, S)
        context = self.image_proj(image_tokens)  # (B, N, width)
        x, self_ws, cross_ws = self.transformer(
            x, mask=mask, context=context, need_weights=need_weights, caches=caches
        )
        x = self.ln_final(x)  # (B, T, width)
        logits = x @ self.token_embedding.weight.T  # (B, T, vocab)
        return DecoderOutput(x, logits, self_ws, cross_ws)
