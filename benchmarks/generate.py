"""Caption latency and tokens/s, with and without the KV cache, in one run.

    python -m vlp bench generate [--model vlp-tiny] [--tokens 20] [--batch 1] [--beams 1]

Decoding runs a fixed number of new tokens (no early stop at [EOS]) so both paths do the
same work; the ratio is uncached time over cached time. The paths take turns (cached,
uncached, whole caption, cached, …), so a busy machine slows them alike.
"""
from __future__ import annotations

import argparse

import torch

import vlp
from benchmarks.timing import interleaved_medians, load_average, table
from vlp import world
from vlp.generate import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="vlp-tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tokens", type=int, default=20, help="new tokens per caption")
    parser.add_argument("--batch", type=int, default=1, help="images captioned together")
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)


def main(args) -> int:
    model = vlp.load(args.model, args.device)
    net, tok = model.net, model.tokenizer
    images = [world.render(s) for s in world.scenes("test", args.batch)]
    with torch.inference_mode():
        tokens = model._image_tokens(images)
        prompts = [[tok.bos_id]] * args.batch
        # ids no token has for [EOS] and [PAD]: nothing stops early, both paths decode --tokens
        # tokens (the prompts are of one length, so no padding is needed)
        never_eos, never_pad = -1, -2

        def run(use_cache):
            return lambda: generate(net.decoder, tokens, prompts, never_eos, never_pad, args.tokens, args.beams, use_cache)

        seconds = interleaved_medians({
            "KV cache": run(True),
            "no cache (recompute the prefix)": run(False),
            "model.caption": lambda: model.caption(images[0], num_beams=args.beams),
        }, args.repeats, device=model.device)
    full = seconds.pop("model.caption")
    base = seconds["KV cache"]
    rows = []
    for name, s in seconds.items():
        rows.append({"decoding": name, "ms per batch": f"{s * 1e3:.1f}",
                     "tokens/s": f"{args.tokens * args.batch / s:.0f}", "× KV cache": f"{s / base:.2f}"})
    print(f"{model.spec} on {model.device}, {args.tokens} new tokens, batch {args.batch}, beams {args.beams}, "
          f"threads {torch.get_num_threads()}; {load_average()}")
    print(table(rows, ["decoding", "ms per batch", "tokens/s", "× KV cache"]))
    print(f"model.caption (one image, image encoder included, stops at [EOS]): {full * 1e3:.1f} ms")
    return 0
