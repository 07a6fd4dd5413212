"""Pretraining throughput: samples/s of a training step with each lever of the CPU recipe added
in turn, of the data pipeline alone, and (with --layouts) of whole training runs in different
process and thread layouts.

    python -m vlp bench train [--device cpu|cuda] [--batch-size 128] [--rounds 5] [--layouts]

The steps take turns (today's step, + bf16, + one ITM negative, …, the data, today's step, …) on
the same batches, so a busy machine slows them alike; the ratio to today's step is the figure
that holds. "Today" is the step before the recipe: every decoder row (a caption, a question, an
ITM pair) with its own copy of its image's tokens, their keys and values projected per row, in
one padded pass per objective. The layouts are short `python -m vlp train --recipe cpu` runs,
also in turns.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks.timing import interleaved_seconds, load_average, table
from vlp.data import WorldBatches, build_tokenizer
from vlp.device import pick_device
from vlp.model import SIZES, VLP, config_for
from vlp.train import RECIPES, TrainConfig, new_optimizer, prepare_for_training, train_step

# Today's step, then the CPU recipe's step levers one at a time (vlp.train.RECIPES["cpu"]):
# name → (config, how the decoder reads its rows: "copies", "shared" or "packed")
LEVERS = {
    "today: float32, 3 ITM negatives per image": (TrainConfig(), "copies"),
    "+ bf16 autocast, explicit attention (CPU)": (TrainConfig(cpu_bf16=True), "copies"),
    "+ 1 ITM negative per image": (TrainConfig(cpu_bf16=True, itm_negatives=1), "copies"),
    "+ image keys and values projected once per step": (TrainConfig(cpu_bf16=True, itm_negatives=1), "shared"),
    "+ 4 questions per scene": (TrainConfig(cpu_bf16=True, itm_negatives=1, question_pairs=2), "shared"),
    "+ each image's texts packed in one sequence (the cpu recipe's step)":
        (TrainConfig(cpu_bf16=True, itm_negatives=1, question_pairs=2), "packed"),
}


@contextmanager
def unpacked_rows(net: VLP, reading: str):
    """The steps before packing (`reading` "copies" or "shared"; "packed" changes nothing): each
    objective's decoder rows in one padded pass of their own, one text per row, each row with its
    own copy of its image's tokens ("copies": their keys and values projected per row) or
    reading the keys and values projected once per step ("shared")."""
    if reading == "packed":
        yield
        return

    def read(ids, real, image_tokens, image_rows=None, projected=None):
        images = torch.arange(len(ids), device=ids.device) if image_rows is None else image_rows
        if reading == "copies":
            out = net.decoder(ids, image_tokens[images])
        else:
            projected = projected or net.decoder.project_images(image_tokens)
            out = net.decoder(ids, image_tokens, caches=net.decoder.caches_reading(projected, images))
        return out.hidden, out.logits

    def read_together(reads, image_tokens):
        projected = None if reading == "copies" else net.decoder.project_images(image_tokens)
        return {name: read(ids, ids != net.pad_id, image_tokens, rows, projected) for name, (ids, rows) in reads.items()}

    net.read, net.read_together = read, read_together
    try:
        yield
    finally:
        del net.read, net.read_together

# (processes, threads per process) of a whole `--recipe cpu` run, at the same global batch
LAYOUTS = [(1, 2), (1, 1), (2, 1)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny", choices=SIZES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="steps per turn (default: 2)")
    parser.add_argument("--rounds", type=int, default=5, help="turns of each step (default: 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as in each of the cpu recipe's processes; 0: torch's default)")
    parser.add_argument("--layouts", action="store_true",
                        help="also time whole --recipe cpu runs as 1 process × 2 threads, 1 × 1 and 2 × 1")
    parser.add_argument("--layout-steps", type=int, default=40, help="steps of each layout run (default: 40)")


def step_rates(args) -> list[dict]:
    device = pick_device(args.device)
    tok = build_tokenizer()
    torch.manual_seed(0)
    net = VLP(config_for(args.config, len(tok), tok.eos_id), tok.pad_id).to(device).train()
    b = args.batch_size
    data = {q: WorldBatches("train", tok, net.config.vision, question_pairs=q) for q in {1, 2}}
    batches = {q: [d.batch(i, b) for i in range(args.steps)] for q, d in data.items()}
    batches = {q: [type(x)(**{k: v.to(device) for k, v in vars(x).items()}) for x in xs] for q, xs in batches.items()}

    def steps(cfg: TrainConfig, reading: str):
        optimizer = new_optimizer(net, cfg, device)

        def run():
            prepare_for_training(net, device, cfg)
            with unpacked_rows(net, reading):
                for batch in batches[cfg.question_pairs]:
                    train_step(net, optimizer, batch, device, cfg)
        return run

    runs = {name: steps(*lever) for name, lever in LEVERS.items()}
    data = data[RECIPES["cpu"].question_pairs]
    runs["data: draw, render, tokenise"] = lambda: [data.batch(1000 + i, b) for i in range(args.steps)]
    seconds = {name: statistics.median(t) / (args.steps * b)
               for name, t in interleaved_seconds(runs, args.rounds, warmup=1, device=device).items()}
    today = seconds[next(iter(LEVERS))]
    rows = [{"what": name, "samples/s": f"{1 / s:.0f}", "× today's step": f"{today / s:.2f}"}
            for name, s in seconds.items()]
    recipe_step = seconds[list(LEVERS)[-1]]
    end_to_end = 1 / (recipe_step + seconds["data: draw, render, tokenise"])
    rows.append({"what": "the cpu recipe's step + data in the same process", "samples/s": f"{end_to_end:.0f}",
                 "× today's step": f"{today * end_to_end:.2f}"})
    return rows


def layout_rates(args) -> list[dict]:
    """Short real runs of the cpu recipe in each layout, in turns; samples/s as the run logs it."""
    recipe = RECIPES["cpu"]
    global_batch = recipe.batch_size * recipe.cpu_processes
    rates: dict[tuple, list[float]] = {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(2):
            for processes, threads in LAYOUTS:
                out = Path(tmp) / f"{processes}x{threads}-{round_}"
                cmd = [sys.executable, "-m", "vlp", "train", "--recipe", "cpu", "--out", str(out), "--device", "cpu",
                       "--steps", str(args.layout_steps), "--eval-every", str(10**6), "--eval-scenes", "4",
                       "--final-eval", "0", "--no-progress", "--batch-size", str(global_batch // processes),
                       "--processes", str(processes), "--threads", str(threads)]
                subprocess.run(cmd, check=True, capture_output=True)
                rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
                logged = [r["samples_per_s"] for r in rows if "samples_per_s" in r][1:]  # the first includes start-up
                rates[processes, threads].append(statistics.median(logged))
                print(f"  {processes} × {threads}: {rates[processes, threads][-1]:.0f} samples/s; {load_average()}",
                      file=sys.stderr)
    base = statistics.median(rates[LAYOUTS[0]])
    return [{"layout": f"{p} process{'es' if p > 1 else ''} × {t} thread{'s' if t > 1 else ''}",
             "batch per process": global_batch // p, "samples/s": f"{statistics.median(r):.0f}",
             "× 1 process × 2 threads": f"{statistics.median(r) / base:.2f}"} for (p, t), r in rates.items()]


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    started = load_average()
    rows = step_rates(args)
    print(f"device: {device}, threads: {torch.get_num_threads()}, model: {args.config}, batch {args.batch_size}, "
          f"{args.rounds} rounds of {args.steps} steps in turns; {started} at the start, {load_average()} at the end")
    print(table(rows, ["what", "samples/s", "× today's step"]))
    if args.layouts:
        started = load_average()
        rows = layout_rates(args)
        print(f"\nwhole `--recipe cpu` runs of {args.layout_steps} steps, 2 rounds in turns; "
              f"{started} at the start, {load_average()} at the end")
        print(table(rows, ["layout", "batch per process", "samples/s", "× 1 process × 2 threads"]))
    return 0
