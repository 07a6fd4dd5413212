"""Time to the bars: a recipe against today's recipe, from the same random weights, in one run.

    python -m vlp bench pretrain [--recipe cpu] [--minutes 20] [--every 2] [--scenes 200] [--turn 30]
    python -m vlp bench pretrain --quick        # a smoke test of a few seconds

The two take turns of --turn seconds (recipe, today, recipe, …), so a busy machine slows them
alike. Each keeps its own clock of training time (drawing the data and the steps; evaluation
is not counted) and stops when the clock reaches --minutes or its schedule ends. The recipe is
given --minutes as its time budget, so it plans its steps to end its decay inside them. Every
--every minutes of its clock it is evaluated on the first --scenes test scenes (the bars'
four metrics only); a bar's time is that of the first evaluation meeting it. A recipe with
`cpu_processes` > 1 trains as it does in `vlp train`: this benchmark starts itself under
torchrun, the recipe trains in every process, and today's recipe trains in the first process
alone, with two threads, while the others wait.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace

import torch
import torch.distributed as dist

from benchmarks.timing import load_average, table
from vlp.api import VLPModel
from vlp.data import WorldBatches, build_tokenizer
from vlp.device import pick_device
from vlp.evaluate import evaluate
from vlp.model import VLP, config_for
from vlp.schedule import lr_at, replan
from vlp.train import (RECIPES, TrainConfig, end_distributed, launch, new_optimizer, prepare_for_training,
                       train_step, training_data)

BARS = {"vqa_accuracy": 0.97, "caption_accuracy": 0.95, "t2i_p_at_1": 0.95, "itm_accuracy": 0.95}
NAMES = {"vqa_accuracy": "VQA", "caption_accuracy": "captions", "t2i_p_at_1": "text→image P@1", "itm_accuracy": "ITM"}

# Today's recipe: the README's 20-minute CPU run before the recipes (float32, 3 ITM negatives,
# one process of torch's default threads).
TODAY = TrainConfig(steps=800, batch_size=128, lr=3e-3, warmup=100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="cpu", choices=RECIPES, help="the recipe against today's (default: cpu)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training minutes each (default: 20)")
    parser.add_argument("--every", type=float, default=2.0, help="minutes of training between evaluations (default: 2)")
    parser.add_argument("--scenes", type=int, default=200, help="test scenes per evaluation (default: 200)")
    parser.add_argument("--turn", type=float, default=30.0, help="seconds of each turn (default: 30)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 3 s each, batch 8, one process, 8 scenes every 1.5 s")


@dataclass
class Contender:
    name: str
    cfg: TrainConfig
    parallel: bool  # trains in every process (data-parallel), or in the first alone
    net: VLP
    model: torch.nn.Module  # the net, wrapped for data parallelism when parallel
    optimizer: torch.optim.Optimizer
    data: WorldBatches
    step: int = 0
    clock: float = 0.0  # seconds of training so far
    next_eval: float = 0.0
    evals: list[dict] = field(default_factory=list)

    def done(self, budget: float) -> bool:
        return self.clock >= self.end(budget) or self.step >= self.cfg.steps

    def end(self, budget: float) -> float:
        """The clock at which it stops: the budget, unless it plans its steps to end inside the
        budget itself (`minutes`); then its planned steps end it, so a slowdown during its decay
        does not cut the anneal short."""
        return math.inf if self.cfg.minutes else budget


def contender(name: str, cfg: TrainConfig, parallel: bool, device: torch.device, tok, rank: int, every: float) -> Contender:
    torch.manual_seed(cfg.seed)  # both start from the same random weights
    net = VLP(config_for(cfg.size, len(tok), tok.eos_id), tok.pad_id).to(device)
    prepare_for_training(net, device, cfg)
    model = torch.nn.parallel.DistributedDataParallel(net) if parallel and dist.is_initialized() else net
    processes = dist.get_world_size() if parallel and dist.is_initialized() else 1
    data = training_data(cfg, tok, net.config.vision, rank, processes)  # today's trains in rank 0 alone
    return Contender(name, cfg, parallel, net, model, new_optimizer(net, cfg, device), data, next_eval=every)


def train_turn(c: Contender, until: float, device: torch.device) -> None:
    """Steps of `c` until its clock reaches `until` or its schedule ends; when it trains in
    every process, the first one decides each step and tells the others. A recipe with a time
    budget (`minutes`) plans its steps by its own clock, as `vlp train` does."""
    threads = c.cfg.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    c.net.train()
    shared = c.parallel and dist.is_initialized()
    while True:
        c.cfg = replan(c.cfg, c.step, c.cfg.minutes * 60 - c.clock, c.clock / c.step if c.step else None, shared)
        go = torch.tensor([float(c.clock < until and c.step < c.cfg.steps)])
        if shared:
            dist.broadcast(go, 0)
        if not go.item():
            break
        start = time.perf_counter()
        batch = c.data.batch(c.step, c.cfg.batch_size)
        batch = type(batch)(**{k: v.to(device) for k, v in vars(batch).items()})
        for group in c.optimizer.param_groups:
            group["lr"] = lr_at(c.step, c.cfg)
        train_step(c.model, c.optimizer, batch, device, c.cfg)
        c.step += 1
        c.clock += time.perf_counter() - start
    if c.parallel and dist.is_initialized():
        clock = torch.tensor([c.clock], dtype=torch.float64)
        dist.broadcast(clock, 0)  # every process agrees on when the recipe is done
        c.clock = float(clock.item())


def run(args, rank: int, world_size: int) -> list[Contender]:
    device = pick_device(args.device)
    tok = build_tokenizer()
    recipe, today = replace(RECIPES[args.recipe], minutes=args.minutes), TODAY  # the recipe plans to end in time
    if args.quick:
        recipe, today = (replace(cfg, batch_size=8, warmup=5, cpu_processes=1) for cfg in (recipe, today))
    budget, every, turn = args.minutes * 60, args.every * 60, args.turn
    processes = world_size if device.type == "cpu" else 1
    contenders = [contender(f"{args.recipe} recipe", recipe, True, device, tok, rank, every)]
    if rank == 0:
        contenders.append(contender("today", today, False, device, tok, rank, every))
    while not all(c.done(budget) for c in contenders):
        for c in contenders:
            if c.done(budget):
                continue
            train_turn(c, min(c.clock + turn, c.next_eval, c.end(budget)), device)
            if rank == 0 and (c.clock >= c.next_eval or c.done(budget)):
                scores = evaluate(VLPModel(c.net, tok, spec=c.name, device=device), "test", args.scenes, headline=True)
                samples = c.step * c.cfg.batch_size * (processes if c.parallel else 1)
                c.evals.append({"minutes": c.clock / 60, "step": c.step, "samples": samples, "load": os.getloadavg()[0],
                                **{k: scores[k] for k in BARS}})
                print(f"{c.name}: {c.clock / 60:.1f} min, step {c.step}, "
                      + ", ".join(f"{NAMES[k]} {scores[k]:.3f}" for k in BARS) + f"; {load_average()}",
                      file=sys.stderr, flush=True)
                c.next_eval += every
    return contenders


def report(contenders: list[Contender], args, processes: int, started: str) -> None:
    print(f"bench pretrain: {args.minutes:g} training minutes each, turns of {args.turn:g} s, "
          f"{args.scenes} test scenes every {args.every:g} min; {started} at the start, {load_average()} at the end")
    for c in contenders:
        n, threads = (processes, c.cfg.threads) if c.parallel else (1, c.cfg.threads or os.cpu_count())
        layout = f"{n} process{'es' if n > 1 else ''} × {threads} thread{'s' if threads > 1 else ''}"
        print(f"- {c.name}: {layout}, batch {c.cfg.batch_size} per process, {c.step} steps of {c.cfg.steps}"
              f"{f' (planned for {c.cfg.minutes:g} min)' if c.cfg.minutes else ''}, lr {c.cfg.lr:g}, "
              f"bf16 on the CPU {c.cfg.cpu_bf16}, ITM negatives {c.cfg.itm_negatives}")
    rows = [{"recipe": c.name, "minutes": f"{e['minutes']:.1f}", "samples": f"{e['samples']:,}",
             **{NAMES[k]: f"{100 * e[k]:.1f} %" for k in BARS}, "load": f"{e['load']:.1f}"}
            for c in contenders for e in c.evals]
    print("\naccuracy on the test split by minutes of training")
    print(table(rows, ["recipe", "minutes", "samples", *NAMES.values(), "load"]))
    rows = []
    for key, bar in [*BARS.items(), ("all", None)]:
        row = {"bar": f"{NAMES[key]} ≥ {100 * bar:g} %" if bar else "all four"}
        for c in contenders:
            met = [e for e in c.evals if all(e[k] >= b for k, b in BARS.items())] if bar is None else \
                [e for e in c.evals if e[key] >= bar]
            row[c.name] = f"{met[0]['minutes']:.1f} min" if met else f"not in {c.clock / 60:.1f} min"
        rows.append(row)
    speeds = {c.name: c.evals[-1]["samples"] / c.clock for c in contenders if c.clock}
    rows.append({"bar": "samples/s (in this run)", **{name: f"{s:.0f}" for name, s in speeds.items()}})
    print("\ntime to each bar (minutes of training)")
    print(table(rows, ["bar", *(c.name for c in contenders)]))


def main(args) -> int:
    if args.quick:
        args.minutes, args.every, args.scenes, args.turn = 0.05, 0.025, 8, 1.0
    recipe = RECIPES[args.recipe]
    on_cpu = pick_device(args.device).type == "cpu"
    if on_cpu and recipe.cpu_processes > 1 and not args.quick and "WORLD_SIZE" not in os.environ:
        return launch(recipe.cpu_processes, ["bench", "pretrain", *sys.argv[3:]])
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    started = load_average()
    contenders = run(args, rank, world_size)
    if rank == 0:
        report(contenders, args, world_size, started)
    end_distributed(world_size)
    return 0
