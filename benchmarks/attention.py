"""Attention speed: vlp's fused and explicit paths vs nn.MultiheadAttention, as ratios to SDPA.

    python -m vlp bench attention [--device cpu|cuda] [--repeats 50]

The paths take turns (A, B, C, …, A, B, C, …), so a busy machine slows them alike.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.timing import interleaved_medians, load_average, table
from vlp.layers import Attention

CASES = {  # name: (batch, tokens, width, heads)
    "vlp-tiny (ViT 64px/8)": (64, 65, 128, 4),
    "ViT-B/32": (8, 50, 768, 12),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=50)


def measure(batch: int, tokens: int, width: int, heads: int, device: str, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    ours = Attention(width, heads).to(device).eval()
    ref = nn.MultiheadAttention(width, heads, batch_first=True).to(device).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(batch, tokens, width, device=device)
    w_q, w_k, w_v = ours.in_proj_weight.chunk(3)
    b_q, b_k, b_v = ours.in_proj_bias.chunk(3)

    def sdpa():  # the same projections around torch's fused kernel: the floor for this layer
        split = lambda t: t.view(batch, tokens, heads, -1).transpose(1, 2)
        q, k, v = split(F.linear(x, w_q, b_q)), split(F.linear(x, w_k, b_k)), split(F.linear(x, w_v, b_v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        return ours.out_proj(out)

    runs = {
        "F.scaled_dot_product_attention": sdpa,
        "vlp Attention, fused": lambda: ours(x),
        "vlp Attention, explicit + weights": lambda: ours(x, need_weights=True),
        "nn.MultiheadAttention": lambda: ref(x, x, x, need_weights=False),
        "nn.MultiheadAttention + weights": lambda: ref(x, x, x, need_weights=True, average_attn_weights=False),
    }
    with torch.inference_mode():
        seconds = interleaved_medians(runs, repeats, device=device)
    base = seconds["F.scaled_dot_product_attention"]
    return [{"path": n, "ms": f"{s * 1e3:.3f}", "× SDPA": f"{s / base:.2f}"} for n, s in seconds.items()]


def main(args) -> int:
    print(f"device: {args.device}, threads: {torch.get_num_threads()}, torch {torch.__version__}")
    for name, (b, t, w, h) in CASES.items():
        print(f"\n{name}: batch {b}, {t} tokens, width {w}, {h} heads")
        print(table(measure(b, t, w, h, args.device, args.repeats), ["path", "ms", "× SDPA"]))
        print(load_average())
    return 0
