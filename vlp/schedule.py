"""The learning-rate schedule of a training run, and the time budget that plans its length.

`lr_at` is warm-up, a held peak, then cosine decay; `planned_steps` sizes a run with a budget
(`--minutes`) from the clock, so that its decay ends inside the budget on any machine.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from vlp.train import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then `lr` held, then cosine decay to lr * final_lr over the last
    `decay_share` of the steps after warm-up (1.0: decay from the end of warm-up on)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = decay_start(cfg)
    if step < start:
        return cfg.lr
    progress = (step - start) / max(1, cfg.steps - 1 - start)
    floor = cfg.lr * cfg.final_lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def decay_start(cfg: TrainConfig) -> int:
    """The step at which the learning rate starts to decay."""
    return cfg.warmup + round((1 - cfg.decay_share) * (cfg.steps - cfg.warmup))


PLAN_EVERY = 10  # steps between the plans of a run with a time budget


def planned_steps(cfg: TrainConfig, step: int, seconds_left: float, step_seconds: float) -> int:
    """The step count of a run with a time budget (`cfg.minutes`), at `step`: the steps done and
    as many more as `seconds_left` holds at `step_seconds` each. A slower or faster machine gets
    fewer or more steps, and the schedule still ends with its anneal, where most of the accuracy
    is won (at the recipe's step 1,000 val captions were 60 %, at 1,500 95.5 %). Once the decay
    has begun the count stays as it is, and a plan never puts the decay's start behind `step`
    (it starts it now instead), so the rate never jumps down the cosine."""
    if step >= decay_start(cfg):
        return cfg.steps
    steps = step + max(1, int(seconds_left / step_seconds))
    while decay_start(replace(cfg, steps=steps)) < step:  # the budget shrank past the decay's start
        steps += 1
    return steps


def replan(cfg: TrainConfig, step: int, seconds_left: float, step_seconds: float | None,
           shared: bool) -> TrainConfig:
    """Every PLAN_EVERY steps of a run with a time budget, the config with the budget's step
    count (`planned_steps`); otherwise, or before any step was timed (`step_seconds` None), the
    config as it is. When the run is `shared` by several processes, all take the first's plan."""
    if not cfg.minutes or step % PLAN_EVERY or step_seconds is None:
        return cfg
    steps = torch.tensor([planned_steps(cfg, step, seconds_left, step_seconds)])
    if shared:
        dist.broadcast(steps, 0)
    return replace(cfg, steps=int(steps.item()))
