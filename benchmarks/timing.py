"""Timing helpers shared by the benchmarks.

The machine may be shared: another program can take a core for a while. So the paths a
benchmark compares are timed in turns (A, B, A, B, …), never one after the other, and the
load average is printed beside the figures: a ratio measured in turns holds while the
absolute figures move with the load.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device | str | None = None) -> None:
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def load_average() -> str:
    """The machine's 1-, 5- and 15-minute load averages and its cores, to print beside figures."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def interleaved_seconds(runs: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3,
                        device=None) -> dict[str, list[float]]:
    """Wall time of each call of each run, the runs taking turns: after `warmup` calls of each,
    `repeats` rounds of one call of every run in order (A, B, C, A, B, C, …)."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3,
                        device=None) -> dict[str, float]:
    """Median seconds per call of each run, timed in turns (`interleaved_seconds`)."""
    return {name: statistics.median(t) for name, t in interleaved_seconds(runs, repeats, warmup, device).items()}


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table (Markdown pipes, so it pastes into the README)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda items: "| " + " | ".join(x.ljust(w) for x, w in zip(items, widths)) + " |"
    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])
