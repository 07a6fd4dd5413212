"""The transformer layers every vlp model is built from, written to be read in class.

Attention is softmax(QKᵀ/√d)V. `scaled_dot_product_attention` below spells that formula out;
`Attention` runs it either explicitly (when the caller asks for the weights, e.g. to draw
them) or through PyTorch's fused kernel (`F.scaled_dot_product_attention`), which gives the
same output faster and without materialising the (T, S) weight matrix.

Parameter names follow `torch.nn.MultiheadAttention` and CLIP (`in_proj_weight`,
`out_proj`, `ln_1`, `mlp.c_fc`, …) so that real checkpoints map onto these layers with a
short, explicit key list.

Masks follow `F.scaled_dot_product_attention`: a boolean mask is True where a query may
attend to a key; a float mask is added to the scores (use -inf to block). Any mask must
broadcast to (B, heads, T, S).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None, dropout: float = 0.0, training: bool = False):
    """softmax(q kᵀ / √d) v, step by step. Returns (out, weights).

    Args:
        q: (..., T, d) queries; k: (..., S, d) keys; v: (..., S, dv) values.
        mask: optional boolean (True = attend) or additive float mask broadcastable to (..., T, S).
    Returns:
        out (..., T, dv) and the attention weights (..., T, S), each row summing to 1.
    """
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (..., T, S); q scaled: fewer numbers than the scores
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = scores.softmax(dim=-1)
    out = F.dropout(weights, dropout, training=training) @ v
    return out, weights


def causal_mask(t: int, s: int | None = None, device=None) -> torch.Tensor:
    """Boolean (t, s) mask letting query i see keys 0 … i + (s − t).

    With a KV cache the t new queries are the last t of s positions, hence the offset.
    """
    s = t if s is None else s
    return torch.ones(t, s, dtype=torch.bool, device=device).tril(diagonal=s - t)


def padding_mask(keep: torch.Tensor) -> torch.Tensor:
    """(B, S) boolean "this key is a real token" → a mask (B, 1, 1, S) for every head and query."""
    return keep[:, None, None, :].bool()


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of boolean masks (None ones skipped); broadcasting does the shapes."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


@dataclass
class KVCache:
    """Keys and values kept between decoding steps, one per attention layer.

    Self-attention appends each new step's keys and values; cross-attention projects the
    (fixed) context once and reuses it. Passed in and returned explicitly: no hidden state.
    """

    k: torch.Tensor | None = None  # (B, heads, S, head_dim)
    v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep this step's keys and values (B, heads, t, head_dim) after the cached ones; return all."""
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)  # (B, heads, S, head_dim)
        self.k, self.v = k, v
        return k, v


class Attention(nn.Module):
    """Multi-head attention, self (context=None) or cross (keys and values from `context`).

    Args:
        dim: model width; split evenly over `num_heads`.
        num_heads: number of heads.
        dropout: dropout on the attention weights during training.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        assert dim % num_heads == 0, f"width {dim} does not split over {num_heads} heads"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        # PyTorch's fused kernel unless the weights are asked for. Training in bf16 on the CPU
        # turns it off (`use_fused_attention`): there the fused kernel's bf16 backward is slow.
        self.fused = True
        # Q, K and V projections stacked in one matrix, as nn.MultiheadAttention and CLIP store them.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _project(self, x: torch.Tensor, part: str) -> torch.Tensor:
        """x (B, n, dim) through the query, key or value projection (part "q", "k" or "v"), split into heads."""
        b, n, _ = x.shape
        i = "qkv".index(part)
        y = F.linear(x, self.in_proj_weight.chunk(3)[i], self.in_proj_bias.chunk(3)[i])  # (B, n, dim)
        return y.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, n, head_dim)

    def context_keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (C, heads, S, head_dim) of a cross-attention `context` (C, S, dim)."""
        return self._project(context, "k"), self._project(context, "v")

    def _queries_keys_values(
        self, x: torch.Tensor, context: torch.Tensor | None, cache: KVCache | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, heads, T, head_dim) of x; keys and values (B, heads, S, head_dim) of x
        (self-attention) or of `context` (cross)."""
        if context is None:  # all three from x: one matrix multiply
            b, n, _ = x.shape
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, n, 3 · dim)
            q, k, v = qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            # self-attention with a cache: this step's keys and values after the earlier steps'
            return (q, k, v) if cache is None else (q, *cache.append(k, v))
        q = self._project(x, "q")
        if cache is not None and cache.k is not None:  # the context never changes: projected on the first step
            return q, cache.k, cache.v
        k, v = self.context_keys_values(context)
        if cache is not None:
            cache.k, cache.v = k, v
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from x (B, T, dim) to itself or to `context` (B, S, dim).

        Args:
            mask: boolean (True = attend) or additive, broadcastable to (B, heads, T, S);
                with a self-attention cache, S counts the cached keys too.
            need_weights: return the weights (B, heads, T, S); this takes the explicit path.
            cache: a KVCache to read and extend (self-attention) or fill once (cross-attention).
        Returns:
            (out (B, T, dim), weights or None).
        """
        q, k, v = self._queries_keys_values(x, context, cache)  # (B, heads, T or S, head_dim)
        dropout = self.dropout if self.training else 0.0
        if need_weights or not self.fused:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout, self.training)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
            weights = None
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)  # (B, T, dim)
        return self.out_proj(out), weights if need_weights else None


def use_fused_attention(module: nn.Module, fused: bool) -> None:
    """Every `Attention` in `module` takes the fused kernel (True) or the explicit formula (False)."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.fused = fused


class QuickGELU(nn.Module):
    """x·σ(1.702x): the GELU approximation OpenAI's CLIP was trained with."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    """Two linear layers with a GELU between; names as in CLIP (`c_fc`, `c_proj`)."""

    def __init__(self, dim: int, hidden: int, quick_gelu: bool = False):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.gelu = QuickGELU() if quick_gelu else nn.GELU()
        self.c_proj = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


@dataclass
class BlockCaches:
    """The KV caches of one block: its self-attention and, if any, its cross-attention."""

    self_attn: KVCache
    cross_attn: KVCache


class Block(nn.Module):
    """Pre-LN transformer block: x + SelfAttn(LN(x)) [+ CrossAttn(LN(x), context)] + MLP(LN(x)).

    Args:
        dim: width; num_heads: heads; mlp_ratio: MLP hidden width over `dim`.
        cross_attention: add a cross-attention sublayer (the multimodal decoder's blocks).
        quick_gelu: CLIP's QuickGELU in the MLP instead of GELU.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        cross_attention: bool = False,
        dropout: float = 0.0,
        quick_gelu: bool = False,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, dropout)
        if cross_attention:
            self.ln_cross = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, dropout)
        else:
            self.ln_cross = self.cross_attn = None
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), quick_gelu)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        caches: BlockCaches | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns (x, self-attention weights or None, cross-attention weights or None)."""
        h, self_w = self.attn(
            self.ln_1(x), mask=mask, need_weights=need_weights, cache=caches and caches.self_attn
        )
        x = x + h
        cross_w = None
        if self.cross_attn is not None:
            assert context is not None, "this block cross-attends: pass the context (e.g. image tokens)"
            h, cross_w = self.cross_attn(
                self.ln_cross(x),
                context=context,
                mask=context_mask,
                need_weights=need_weights,
                cache=caches and caches.cross_attn,
            )
            x = x + h
        x = x + self.mlp(self.ln_2(x))
        return x, self_w, cross_w


class Transformer(nn.Module):
    """A stack of blocks (CLIP calls the list `resblocks`)."""

    def __init__(self, dim: int, layers: int, num_heads: int, mlp_ratio: float = 4.0, **block_kwargs):
        super().__init__()
        self.resblocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, **block_kwargs) for _ in range(layers)
        )

    def new_caches(self) -> list[BlockCaches]:
        return [BlockCaches(KVCache(), KVCache()) for _ in self.resblocks]

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        caches: list[BlockCaches] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Returns (x, per-layer self-attention weights, per-layer cross-attention weights).

        The weight lists are empty unless `need_weights`.
        """
        self_ws, cross_ws = [], []
        for i, block in enumerate(self.resblocks):
            x, sw, cw = block(x, mask, context, context_mask, need_weights, caches and caches[i])
            if need_weights:
                self_ws.append(sw)
                if cw is not None:
                    cross_ws.append(cw)
        return x, self_ws, cross_ws
