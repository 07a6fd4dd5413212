"""Text: the tokenizer, the text encoder (for contrastive learning) and the multimodal decoder.

The decoder reads text causally and cross-attends to the image tokens; it captions, answers
questions (the question as a prefix) and, from its hidden state at the end token, judges
whether a text matches an image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers
from torch import nn

from vlp.layers import BlockCaches, Transformer, causal_mask, combine_masks, padding_mask

PAD, BOS, EOS, SEP, UNK = "[PAD]", "[BOS]", "[EOS]", "[SEP]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, SEP, UNK)


class Tokenizer:
    """A word-level tokenizer (Hugging Face `tokenizers`): lower-cases, splits off punctuation.

    A word outside the vocabulary becomes [UNK]; it never raises.
    """

    def __init__(self, backend: HFTokenizer):
        self.backend = backend
        self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = (
            backend.token_to_id(t) for t in SPECIALS
        )

    @classmethod
    def from_words(cls, words) -> "Tokenizer":
        vocab = {t: i for i, t in enumerate(SPECIALS)}
        for w in sorted(set(words) - set(SPECIALS)):
            vocab[w] = len(vocab)
        backend = HFTokenizer(models.WordLevel(vocab, unk_token=UNK))
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        # \w+ runs and single punctuation marks: "circle?" → "circle", "?"
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        return cls(backend)

    @classmethod
    def load(cls, path) -> "Tokenizer":
        return cls(HFTokenizer.from_file(str(path)))

    def save(self, path) -> None:
        self.backend.save(str(path))

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Word ids of `text`, no special tokens."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Text of `ids`, special tokens dropped, punctuation re-attached."""
        words = [self.backend.id_to_token(int(i)) for i in ids]
        return self.backend.decoder.decode([w for w in words if w not in SPECIALS])

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` that are not in the vocabulary, as written."""
        enc = self.backend.encode(text, add_special_tokens=False)
        return [text[a:b] for (a, b), i in zip(enc.offsets, enc.ids) if i == self.unk_id]

    def batch(self, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[BOS] words [EOS], truncated to `max_len`, right-padded → (ids, keep), both (B, max_len)."""
        rows = [[self.bos_id] + self.encode(t)[: max_len - 2] + [self.eos_id] for t in texts]
        ids = torch.full((len(rows), max_len), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != self.pad_id


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

    def forward(self, ids: torch.Tensor, keep: torch.Tensor | None = None, need_weights: bool = False):
        """ids (B, T) → (embedding (B, embed_dim), per-layer attention weights)."""
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:t]
        mask = causal_mask(t, device=ids.device) if self.config.causal else None
        if keep is not None:
            mask = combine_masks(mask, padding_mask(keep))
        x, attentions, _ = self.transformer(x, mask=mask, need_weights=need_weights)
        x = self.ln_final(x)
        end = (ids == self.config.eos_id).int().argmax(dim=-1)  # first end token per row
        pooled = x[torch.arange(x.shape[0], device=x.device), end]
        return pooled @ self.text_projection, attentions


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
    self_attentions: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, T, T)
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

    def forward(
        self,
        ids: torch.Tensor,
        image_tokens: torch.Tensor,
        keep: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
        caches: list[BlockCaches] | None = None,
    ) -> DecoderOutput:
        """Decode `ids` (B, T) against `image_tokens` (B, N, image_width).

        Args:
            keep: (B, S) True for real tokens over all S positions seen so far (cache included);
                needed only for left-padded batches (right padding is hidden by causality).
            positions: (B, T) position of each token; default 0 … T−1 after the cached ones.
            caches: per-block KV caches for incremental decoding (see `new_caches`).
        """
        t = ids.shape[1]
        past = caches[0].self_attn.length if caches else 0
        if positions is None:
            positions = torch.arange(past, past + t, device=ids.device).expand(ids.shape[0], t)
        x = self.token_embedding(ids) + self.positional_embedding[positions]
        # one new token may see every earlier one: no mask needed (the common decoding step)
        mask = causal_mask(t, past + t, device=ids.device) if t > 1 else None
        if keep is not None:
            # A padding query keeps its causal view: a row with no key would make softmax NaN.
            is_pad_query = ~keep[:, past : past + t, None]  # (B, t, 1)
            mask = combine_masks(mask, padding_mask(keep) | is_pad_query[:, None])
        context = self.image_proj(image_tokens)
        x, self_ws, cross_ws = self.transformer(
            x, mask=mask, context=context, need_weights=need_weights, caches=caches
        )
        x = self.ln_final(x)
        logits = x @ self.token_embedding.weight.T
        return DecoderOutput(x, logits, self_ws, cross_ws)
