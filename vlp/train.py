"""Pretraining: `python -m vlp train --recipe cpu --out runs/NAME` (or `--config tiny` and flags).

Multi-task (ITC + ITM + captioning + VQA) on fresh Shapes World scenes; AdamW with warm-up
and cosine decay; a progress bar with the losses and samples/s; periodic validation; atomic
checkpoints that resume exactly (model, optimiser, schedule, RNG, and the data, which is a
function of the step); `metrics.jsonl` and `loss.png` in the run folder. bf16 autocast on
CUDA, and on the CPU when the recipe asks (`RECIPES`). Data-parallel with `torchrun
--nproc_per_node=N -m vlp train …` (gloo on CPU, NCCL on GPUs); the cpu recipe starts its two
processes itself.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vlp.api import VLPModel
from vlp.atomic import recover
from vlp.checkpoint import save_checkpoint
from vlp.data import RELATION_SHARE, WorldBatches, build_tokenizer
from vlp.device import autocast, pick_device
from vlp.errors import BadArgument, BadCheckpoint
from vlp.layers import use_fused_attention
from vlp.model import SIZES, VLP, config_for
from vlp.run_folder import load_state, metrics_log, plot_losses, save_state
from vlp.schedule import lr_at, replan

LOSS_WEIGHTS = {"itc": 1.0, "itm": 1.0, "caption": 1.0, "vqa": 1.0}


@dataclass
class TrainConfig:
    size: str = "tiny"  # a named model size (vlp.model.SIZES)
    steps: int = 3000  # optimiser steps
    batch_size: int = 128  # per process
    lr: float = 2e-3  # peak learning rate
    warmup: int = 150  # linear warm-up steps, then cosine decay to lr * final_lr
    final_lr: float = 0.05  # the learning rate at the last step, as a share of `lr`
    decay_share: float = 1.0  # of the steps after warm-up, the last share decays; before it the rate stays at lr
    weight_decay: float = 0.05
    seed: int = 0
    eval_every: int = 250  # steps between validations and checkpoints
    eval_scenes: int = 200  # validation scenes per evaluation
    workers: int = 0  # data worker processes; 0 draws batches in the training process
    init: str | None = None  # start from this checkpoint's weights (continued pretraining)
    cpu_bf16: bool = False  # bf16 autocast on the CPU too (CUDA always trains in bf16), explicit attention
    itm_negatives: int = 3  # negative ITM pairs per image: 3 (hard text, hard image, near miss) or 1
    threads: int = 0  # torch threads per process; 0: torch's default (one per core)
    cpu_processes: int = 1  # on the CPU, data-parallel processes started with torchrun (one thread each)
    question_pairs: int = 1  # question pairs per scene (vlp.data.WorldBatches)
    relation_share: float = RELATION_SHARE  # of the second question of a pair: a relation (WorldBatches)
    where_share: float = 0.0  # of the phrased questions that are not relations: "where is …?" (WorldBatches)
    where_steps: int = 0  # for this many steps at the start, all of those ask "where is …?" (WorldBatches)
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(LOSS_WEIGHTS))  # 0: not computed
    minutes: float = 0.0  # > 0: the steps are planned to end training inside this many minutes (planned_steps)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch, device: torch.device,
               cfg: TrainConfig = TrainConfig(), clip: float = 1.0) -> dict[str, torch.Tensor]:
    """One optimisation step on `batch`: the weighted sum of the losses (`cfg.loss_weights`; one
    weighted 0 is not computed), backward, gradient clipping, AdamW. Returns the losses (detached) by name."""
    weights = {k: w for k, w in cfg.loss_weights.items() if w}
    with training_autocast(device, cfg):
        losses = model(batch, itm_negatives=cfg.itm_negatives, objectives=tuple(weights))
    loss = sum(w * losses[k] for k, w in weights.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return {k: v.detach() for k, v in losses.items()}


def training_data(cfg: TrainConfig, tokenizer, vision, rank: int = 0, processes: int = 1) -> WorldBatches:
    """The stream of training batches of process `rank` of `processes` training together, with
    the recipe's mix of questions; its contrastive targets span every process's batch."""
    seeds = [cfg.seed * 1000 + r for r in range(processes)]
    return WorldBatches("train", tokenizer, vision, seed=seeds[rank], team=tuple(seeds) if processes > 1 else (),
                        question_pairs=cfg.question_pairs, relation_share=cfg.relation_share,
                        where_share=cfg.where_share, where_steps=cfg.where_steps)


def training_autocast(device: torch.device, cfg: TrainConfig):
    """bf16 autocast on CUDA, and on the CPU when the recipe asks for it (`cpu_bf16`)."""
    if device.type == "cpu" and cfg.cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return autocast(device)


def prepare_for_training(net: torch.nn.Module, device: torch.device, cfg: TrainConfig) -> None:
    """On the CPU in bf16, attention takes the explicit formula: the fused kernel's bf16 backward
    is several times slower there (≈ 1.9 s a step against 0.2 s in float32). CUDA keeps it fused."""
    use_fused_attention(net, not (device.type == "cpu" and cfg.cpu_bf16))


def new_optimizer(net: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on the matrices only (not on biases, norms and embeddings)."""
    decay = [p for n, p in net.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in net.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), fused=device.type == "cuda",
    )


def fit(model: torch.nn.Module, step: Callable, batch_at: Callable[[int], object], cfg: TrainConfig,
        optimizer: torch.optim.Optimizer | None = None) -> tuple[list, float]:
    """The loop for any model in one process (a lesson's baseline, a fine-tuning run): `cfg.steps`
    calls of step(model, optimizer, batch_at(i)) at the learning rate `lr_at(i, cfg)`, with AdamW
    (`new_optimizer`) unless one is given. Returns what each step returned, and the seconds.
    Pretraining vlp's own model (`train`) adds checkpoints, validation, logs and processes."""
    optimizer = optimizer or new_optimizer(model, cfg, next(model.parameters()).device)
    model.train()
    results, t0 = [], time.perf_counter()
    for i in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i, cfg)
        results.append(step(model, optimizer, batch_at(i)))
    model.eval()
    return results, time.perf_counter() - t0


# Named recipes: `python -m vlp train --recipe NAME`; any flag given overrides the recipe's field.
# Each lever is measured by `python -m vlp bench train` (samples/s) and `bench pretrain` (time to the bars).
RECIPES = {
    # The README's GPU pretraining (one H200, bf16 as always on CUDA; 229 s).
    "gpu": TrainConfig(batch_size=256, steps=2600, lr=3e-3, warmup=150, eval_every=650, eval_scenes=100,
                       workers=12),
    # vlp-tiny from random weights on two CPU cores in 20 minutes (`minutes`): the steps are
    # planned from the clock so that the decay ends inside them (vlp.schedule). README: the runs.
    "cpu": TrainConfig(
        cpu_processes=2,  # two single-thread processes: both cores busy, and no OpenMP stall under load
        threads=1,
        batch_size=64,  # per process, so 128 a step: 62 % of the samples 256 needed (issue 12)
        cpu_bf16=True,  # the core's bf16 units, with the explicit attention path: ≈ 2× a step
        itm_negatives=1,  # one negative ITM pair per image instead of ≈ 3: ≈ 1.3× a step
        question_pairs=2,  # four questions per scene: at 51,200 samples VQA 72.6 % against 64.2 % (issue 12)
        # Up and down are learnt last: captions teach left and right densely, up and down only
        # questions do. At 128,000 samples (1,000 steps; test, 200 scenes) "where is …?" was
        # answered 26 % right, and captions 66 %. Relations oftener (0.9) and "where" in a
        # quarter of the phrased questions: 40 % and 69 %. With the first 500 steps asking
        # "where" in all of them as well: 93 % and 79 %, VQA 89.3 against 84.8 % (README).
        relation_share=0.9,
        where_share=0.25,
        where_steps=500,
        # Captions and answers weigh 3 times ITC and ITM. At 128,000 samples (val, 200 scenes) VQA
        # 97.0 %, captions 96, P@1 95, ITM 94.5 against 89.0, 81.5, 93.5, 91.3 with all at 1 (whose
        # wrong captions mostly named a wrong shape: a square for a diamond).
        loss_weights={"itc": 1.0, "itm": 1.0, "caption": 3.0, "vqa": 3.0},
        minutes=20.0,
        steps=1500,  # the plan before the clock is read; `--steps N` instead of the budget
        lr=2e-3,  # in 5-minute runs 3e-3 and 6e-3 learnt less than 1.5e-3
        warmup=100,
        final_lr=0.0,  # the schedule ends inside the budget: the last steps anneal fully
        decay_share=0.25,  # the peak rate held until the last quarter: at 192,000 samples VQA 92.2 %,
        # captions 90 %, P@1 91 %, ITM 94.3 % against 84.9, 76, 89.5, 88.5 with cosine decay from step 100
        eval_every=500,
        eval_scenes=200,
    ),
}

# flag → TrainConfig field, for the flags that override a recipe
_FIELDS = {"config": "size", "steps": "steps", "batch_size": "batch_size", "lr": "lr", "warmup": "warmup",
           "seed": "seed", "eval_every": "eval_every", "eval_scenes": "eval_scenes", "workers": "workers",
           "init": "init", "threads": "threads", "processes": "cpu_processes", "decay_share": "decay_share",
           "minutes": "minutes"}


def add_arguments(parser: argparse.ArgumentParser, command_name: str = "train") -> None:
    d = TrainConfig()
    parser.add_argument("--recipe", choices=RECIPES, help="a named recipe (vlp.train.RECIPES); "
                        "without one, TrainConfig's defaults")
    parser.add_argument("--config", choices=SIZES, help=f"model size (default: {d.size})")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, metrics.jsonl, loss.png, final model")
    parser.add_argument("--steps", type=int, help=f"optimiser steps (default: {d.steps})")
    parser.add_argument("--minutes", type=float, help="instead of --steps: train for this many minutes, "
                        "validation included; until the learning rate starts to decay, the steps are planned "
                        "from the measured step time so that the decay ends inside the budget (a machine that "
                        "slows down after that runs over; the final evaluation comes after)")
    parser.add_argument("--batch-size", type=int, help=f"per process (default: {d.batch_size})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default: {d.lr})")
    parser.add_argument("--warmup", type=int, help=f"warm-up steps (default: {d.warmup})")
    parser.add_argument("--decay-share", type=float, help="the last share of the steps after warm-up, in which "
                        f"the learning rate decays; before it, it stays at --lr (default: {d.decay_share})")
    parser.add_argument("--loss-weights", metavar="NAME=W,…", help="the weights of some losses, e.g. caption=3,vqa=2 "
                        f"(names: {', '.join(LOSS_WEIGHTS)}; the others keep the recipe's; 0: not computed)")
    parser.add_argument("--seed", type=int, help=f"(default: {d.seed})")
    parser.add_argument("--eval-every", type=int, help=f"steps between validations (default: {d.eval_every})")
    parser.add_argument("--eval-scenes", type=int, help=f"validation scenes (default: {d.eval_scenes})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--workers", type=int, help="data worker processes (default: 0 on the CPU, 8 with CUDA)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's, one per core)")
    parser.add_argument("--processes", type=int, help="on the CPU, single-thread processes started with torchrun "
                        "(default: 1)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--init", metavar="CHECKPOINT", help="start from a checkpoint's weights (e.g. vlp-tiny); "
                        "optimiser and schedule start fresh")
    parser.add_argument("--final-eval", type=int, default=200, help="test scenes for the final metrics.json (0: skip)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs every eval instead)")


def config_from(args) -> TrainConfig:
    """The recipe (or the defaults) with the fields of the flags that were given."""
    if args.steps is not None and args.minutes:
        raise BadArgument("Give --steps or --minutes, not both: with --minutes the steps are planned from the clock.")
    if args.minutes is not None and args.minutes < 0:
        raise BadArgument(f"--minutes must be positive (0: no time budget); got {args.minutes:g}.")
    cfg = RECIPES[args.recipe] if args.recipe else TrainConfig()
    if not args.recipe and args.workers is None and pick_device(args.device).type == "cuda":
        cfg = replace(cfg, workers=8)
    if args.steps is not None:
        cfg = replace(cfg, minutes=0.0)  # steps given: no time budget, whatever the recipe's
    if args.loss_weights is not None:
        cfg = replace(cfg, loss_weights=_weights(args.loss_weights, cfg.loss_weights))
    return replace(cfg, **{field: getattr(args, flag) for flag, field in _FIELDS.items()
                           if getattr(args, flag) is not None})


def _weights(text: str, weights: dict[str, float]) -> dict[str, float]:
    """`weights` with those that `text` ("caption=3,vqa=2") names set."""
    weights = dict(weights)
    for part in text.split(","):
        name, _, value = (p.strip() for p in part.partition("="))
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in weights or not 0 <= weight < math.inf:
            raise BadArgument(f"--loss-weights takes NAME=WEIGHT pairs, NAME one of {', '.join(weights)} and "
                              f"WEIGHT 0 or more, e.g. caption=3,vqa=2; got {part.strip()!r}.")
        weights[name] = weight
    if not any(weights.values()):
        raise BadArgument("--loss-weights leaves no loss to train: give at least one a weight above 0.")
    return weights


def main(args, command_name: str = "train") -> int:
    cfg = config_from(args)
    argv = sys.argv[2:]
    if cfg.cpu_processes > 1 and pick_device(args.device).type == "cpu" and "WORLD_SIZE" not in os.environ:
        return launch(cfg.cpu_processes, ["train", *argv])
    command = "python -m vlp train " + " ".join(shlex.quote(a) for a in argv) if argv else None
    train(cfg, Path(args.out), args.device, args.resume, args.final_eval, not args.no_progress, command)
    return 0


def launch(processes: int, argv: list[str]) -> int:
    """Run `python -m vlp ARGV…` as `processes` single-thread processes under torchrun; wait for them.

    On two cores, two single-thread processes are about as fast as one process of two threads
    when the machine is quiet, and stay fast when another program takes a core: OpenMP's
    threads wait for each other at every operation, so one thread held up by another program
    holds up both (measured 4–7× slower under a load of 4–6; `bench train --layouts`, `bench pretrain`).
    """
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "vlp", *argv]
    return subprocess.run(cmd, env=env).returncode


def train(cfg: TrainConfig, out: Path, device_name: str = "auto", resume: bool = False, final_eval: int = 200,
          progress: bool = True, command: str | None = None) -> Path:
    """Run pretraining; returns the folder of the final model (out / "model")."""
    rank, world_size = _init_distributed(device_name)
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    main_process = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    net = VLP(config_for(cfg.size, len(tokenizer), tokenizer.eos_id), pad_id=tokenizer.pad_id).to(device)
    if cfg.init:
        _init_from(net, cfg.init, tokenizer)
    prepare_for_training(net, device, cfg)
    optimizer = new_optimizer(net, cfg, device)
    out.mkdir(parents=True, exist_ok=True)
    start, elapsed, checkpoint = 0, 0.0, out / "checkpoint"
    recover(checkpoint)  # a save cut off by a crash: put its complete version back
    if resume and (checkpoint / "state.json").is_file():
        start, elapsed, planned = load_state(checkpoint, net, optimizer, device)
        if cfg.minutes and planned:
            cfg = replace(cfg, steps=planned)  # the budget's plan so far
        if main_process:
            print(f"resumed from step {start} (checkpoint at {checkpoint})", flush=True)
            if planned and planned != cfg.steps:
                print(f"the checkpoint's run was planned to {planned} steps; this one runs to {cfg.steps}", flush=True)
    elif resume and main_process:
        print(f"no checkpoint at {checkpoint}; starting from step 0", flush=True)
    unused = not all(cfg.loss_weights.values())  # an objective switched off leaves its head without gradients
    model = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=unused) if world_size > 1 else net
    data = training_data(cfg, tokenizer, net.config.vision, rank, world_size)
    log = metrics_log(out / "metrics.jsonl", start) if main_process else None
    bar = tqdm(initial=start, total=cfg.steps, disable=not (progress and main_process), dynamic_ncols=True,
               desc="pretraining")
    sampler = itertools.count(start) if cfg.minutes else range(start, cfg.steps)  # a budget plans as it goes
    batches = iter(DataLoader(_StepBatches(data, cfg.batch_size), batch_size=None, sampler=sampler,
                              num_workers=cfg.workers, prefetch_factor=4 if cfg.workers else None,
                              generator=torch.Generator()))  # its own seed draw must not move the restored RNG
    t0 = time.perf_counter() - elapsed  # the run's clock, from its first step (before a resume too)
    t_here = time.perf_counter()  # this process's first step, for the step time
    last_validation = 0.0  # seconds the latest validation and checkpoint took: the last step's will too
    seen_since, t_since = 0, time.perf_counter()
    for step in itertools.count(start):
        now = time.perf_counter()
        cfg = replan(cfg, step, cfg.minutes * 60 - (now - t0) - last_validation,
                     (now - t_here) / (step - start) if step > start else None, world_size > 1)
        bar.total = cfg.steps
        if step >= cfg.steps:
            break
        bar.update()
        batch = _to(next(batches), device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        model.train()
        losses = train_step(model, optimizer, batch, device, cfg)
        seen_since += cfg.batch_size * world_size
        if main_process and (step % 10 == 0 or step == cfg.steps - 1):
            rate = seen_since / (time.perf_counter() - t_since)
            seen_since, t_since = 0, time.perf_counter()
            row = {"step": step, "time_s": round(time.perf_counter() - t0, 1), "lr": lr_at(step, cfg),
                   "samples_per_s": round(rate, 1), **{k: round(v.item(), 4) for k, v in losses.items()}}
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.set_postfix({k: f"{v.item():.3f}" for k, v in losses.items()} | {"samples/s": f"{rate:.0f}"})
        last = step == cfg.steps - 1
        if (step + 1) % cfg.eval_every == 0 or last:
            validation_began = time.perf_counter()
            if main_process:
                scores = _validate(net, tokenizer, device, cfg.eval_scenes)
                row = {"step": step + 1, "time_s": round(time.perf_counter() - t0, 1), "val": scores}
                # saved after the validation, so that a resumed run's clock counts it
                save_state(out / "checkpoint", net, tokenizer, optimizer, step + 1, time.perf_counter() - t0, cfg.steps)
                log.write(json.dumps(row) + "\n")
                log.flush()
                tqdm.write(f"step {step + 1}: val {json.dumps(scores)}") if progress else print(json.dumps(row), flush=True)
                plot_losses(out / "metrics.jsonl", out / "loss.png", LOSS_WEIGHTS)
            if world_size > 1:
                dist.barrier()
            last_validation = time.perf_counter() - validation_began
    train_seconds = time.perf_counter() - t0
    final = out / "model"
    scores = _final_metrics(VLPModel(net, tokenizer, spec=out.name, device=device), final_eval, rank, world_size)
    if main_process:
        metrics = {"train": {"steps": cfg.steps, "batch_size": cfg.batch_size * world_size, "seconds": round(train_seconds, 1),
                             "device": str(device), "processes": world_size, "threads": torch.get_num_threads(),
                             "command": command}} | scores
        save_checkpoint(net, tokenizer, final, metrics, {"train": vars(cfg)})  # loss.png: drawn at the last step
        print(f"trained {cfg.steps} steps in {train_seconds:.0f} s; model in {final}")
        log.close()
    end_distributed(world_size)
    return final


class _StepBatches(Dataset):
    """Batch number `step` of the stream, so that worker processes can draw them in parallel."""

    def __init__(self, data: WorldBatches, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def __getitem__(self, step: int):
        return self.data.batch(step, self.batch_size)


def _init_from(net: VLP, spec: str, tokenizer) -> None:
    """Copy a checkpoint's weights in; it must be of the same size and vocabulary."""
    import vlp

    source = vlp.load(spec, device="cpu")
    if not isinstance(source, VLPModel) or source.net.config != net.config or len(source.tokenizer) != len(tokenizer):
        raise BadCheckpoint(f"--init {spec} is not a vlp checkpoint of this size and vocabulary.")
    net.load_state_dict(source.net.state_dict())


def _validate(net: VLP, tokenizer, device, n: int) -> dict:
    from vlp.evaluate import quick_validation

    net.eval()
    return quick_validation(VLPModel(net, tokenizer, spec="training", device=device), n)


FINAL_SPLITS = ("test", "novel")  # the final metrics.json's, on `final_eval` scenes each


def _final_metrics(model: VLPModel, n: int, rank: int, world_size: int) -> dict[str, dict]:
    """The full metrics on each of FINAL_SPLITS (none when n is 0). With several processes each
    evaluates its share of the splits, so that no core idles while another evaluates."""
    from vlp.evaluate import evaluate

    mine = {split: evaluate(model, split, n) for split in FINAL_SPLITS[rank::world_size]} if n else {}
    if world_size == 1:
        return mine
    parts = [None] * world_size
    dist.all_gather_object(parts, mine)
    merged = {split: scores for part in parts for split, scores in part.items()}
    return {split: merged[split] for split in FINAL_SPLITS if split in merged}  # in FINAL_SPLITS' order


def _init_distributed(device_name: str) -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if pick_device(device_name).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world_size) if world_size > 1 else (0, 1)


def end_distributed(world_size: int) -> None:
    """Leave the process group once every process is done: none tears its connections down
    while another still works (rank 0 saves the model after the others have finished)."""
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()


def _to(batch, device):
    return type(batch)(**{k: v.to(device, non_blocking=True) for k, v in vars(batch).items()})
