"""Pretraining throughput: samples/s of full training steps (all four objectives), and of the
data pipeline alone, on this machine.

    python -m vlp bench train [--device cpu|cuda] [--batch-size 128] [--steps 10]
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.timing import sync, table
from vlp.data import WorldBatches, build_tokenizer
from vlp.device import pick_device
from vlp.model import SIZES, VLP, config_for
from vlp.train import train_step


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", choices=SIZES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps, after 2 warm-up steps")


def main(args) -> int:
    device = pick_device(args.device)
    tok = build_tokenizer()
    net = VLP(config_for(args.config, len(tok), tok.eos_id), tok.pad_id).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    data = WorldBatches("train", tok, net.config.vision)
    b = args.batch_size

    start = time.perf_counter()
    batches = [data.batch(i, b) for i in range(args.steps + 2)]
    data_rate = len(batches) * b / (time.perf_counter() - start)

    def step(batch):
        train_step(net, opt, type(batch)(**{k: v.to(device) for k, v in vars(batch).items()}), device)

    for batch in batches[:2]:
        step(batch)
    sync(device)
    start = time.perf_counter()
    for batch in batches[2:]:
        step(batch)
    sync(device)
    train_rate = args.steps * b / (time.perf_counter() - start)
    print(f"device: {device}, threads: {torch.get_num_threads()}, model: {args.config}, batch {b}")
    print(table([
        {"what": "data: draw, render, tokenise", "samples/s": f"{data_rate:.0f}"},
        {"what": "training step: ITC+ITM+caption+VQA, fwd+bwd+clip+AdamW", "samples/s": f"{train_rate:.0f}"},
        {"what": "end to end (data in the same process)", "samples/s": f"{1 / (1 / data_rate + 1 / train_rate):.0f}"},
    ], ["what", "samples/s"]))
    return 0
