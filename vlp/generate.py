"""Greedy and beam decoding for the multimodal decoder, with or without the KV cache.

Prompts of different lengths are left-padded: every row then ends at the same column, so one
new token per row is appended each step. Positions count real tokens only, so a padded row
sees the same positions it would see alone.
"""
from __future__ import annotations

import torch

from vlp.text import MultimodalDecoder


@torch.no_grad()
def generate(
    decoder: MultimodalDecoder,
    image_tokens: torch.Tensor,
    prompts: list[list[int]],
    eos_id: int,
    pad_id: int,
    max_new_tokens: int = 30,
    num_beams: int = 1,
    use_cache: bool = True,
    reads: torch.Tensor | None = None,
) -> list[list[int]]:
    """Continue each prompt (a list of ids starting with [BOS]) against its image.

    Args:
        image_tokens: (B, N, image_width), one row per prompt.
        num_beams: 1 for greedy; more for beam search (scores normalised by length).
        use_cache: keep keys and values between steps (the fast path); False recomputes the
            whole sequence each step, for comparison.
        reads: (vocab,) the id the decoder reads for each id written (default: itself), e.g.
            colour words read as [UNK] (lesson 7); the ids returned are the ones written.
    Returns:
        the new ids of each row, up to and without [EOS].
    """
    b, k = len(prompts), num_beams
    width = max(len(p) for p in prompts)
    ids = torch.full((b, width), pad_id, dtype=torch.long, device=image_tokens.device)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
    keep = ids != pad_id
    padded = not bool(keep.all())
    # beams of one row sit next to each other: row i's beams are i*k … i*k + k − 1
    ids, keep = ids.repeat_interleave(k, 0), keep.repeat_interleave(k, 0)
    image_tokens = image_tokens.repeat_interleave(k, 0)
    positions = (keep.long().cumsum(1) - 1).clamp(min=0)
    scores = torch.zeros(b, k, device=ids.device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one until the first split
    finished = torch.zeros(b * k, dtype=torch.bool, device=ids.device)
    lengths = torch.zeros(b * k, device=ids.device)
    caches = decoder.new_caches() if use_cache else None

    read = (lambda t: t) if reads is None else (lambda t: reads.to(t.device)[t])  # noqa: E731
    step_ids, step_pos = read(ids), positions
    for _ in range(max_new_tokens):
        logits = decoder(step_ids, image_tokens, keep=keep if padded else None, positions=step_pos,
                         caches=caches).logits[:, -1]
        logp = logits.float().log_softmax(-1)  # (b·k, vocab)
        logp[finished] = float("-inf")
        logp[finished, pad_id] = 0.0  # a finished beam only pads, at no cost
        total = (scores.view(-1, 1) + logp).view(b, -1)  # (b, k·vocab)
        scores, flat = total.topk(k, dim=-1)
        beam = (flat // logp.shape[-1] + torch.arange(b, device=ids.device)[:, None] * k).view(-1)
        token = (flat % logp.shape[-1]).view(-1)
        ids, keep, positions = ids[beam], keep[beam], positions[beam]
        finished, lengths = finished[beam], lengths[beam]
        if caches is not None and k > 1:  # with one beam per row the order never changes
            for block in caches:
                for cache in (block.self_attn, block.cross_attn):
                    cache.k, cache.v = cache.k[beam], cache.v[beam]
        lengths = lengths + (~finished).float()
        finished = finished | (token == eos_id) | (token == pad_id)
        new_pos = positions[:, -1:] + 1
        ids = torch.cat([ids, token[:, None]], 1)
        keep = torch.cat([keep, torch.ones_like(token[:, None], dtype=torch.bool)], 1)
        positions = torch.cat([positions, new_pos], 1)
        if finished.all():
            break
        step_ids, step_pos = (read(token[:, None]), new_pos) if use_cache else (read(ids), positions)

    best = (scores / lengths.view(b, k).clamp(min=1)).argmax(-1)  # length-normalised
    rows = ids[torch.arange(b, device=ids.device) * k + best, width:].tolist()
    out = []
    for row in rows:
        cut = [i for i, t in enumerate(row) if t in (eos_id, pad_id)]
        out.append(row[: cut[0]] if cut else row)
    return out
