"""The Train tab's run: a short pretraining of vlp's own model from random weights, watched live.

One run at a time for the whole server (`LiveRun`). It trains in a child process at the lowest
CPU priority with one thread, so the other tabs keep serving; it is bounded in steps
(`MAX_TRAIN_STEPS`) and in time (`MAX_TRAIN_SECONDS`) before it starts, and can be stopped.
Every `SNAPSHOT_EVERY` steps the child saves its weights (the crash-safe checkpoint folder);
a watcher thread in the server reads its losses and loads each snapshot, so a visitor's page
only reads what the watcher keeps (`RunView`) and the model of the last snapshot (`model()`).
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vlp.errors import BadArgument
from vlp.limits import MAX_TRAIN_SECONDS, MAX_TRAIN_STEPS, whole_number

ROOT = Path(__file__).resolve().parent.parent  # where `python -m demo.training` finds the packages
SIZES = ("micro", "tiny")  # what a visitor may train: vlp.model's two smallest
BATCH = 32  # scenes a step
SNAPSHOT_EVERY = 25  # steps between saved weights (each one also redraws the attention map)
LR = 2e-3


@dataclass
class RunView:
    """What the page shows of the run: copied from the watcher under its lock."""

    status: str = "idle"  # idle, starting, running, finished, stopped, failed
    size: str = ""
    steps: int = 0  # asked for
    step: int = 0  # done
    seconds: float = 0.0
    losses: list[dict] = field(default_factory=list)  # {"step", "objective", "loss"} rows
    snapshot: int = 0  # the step of the loaded weights (0: none yet)
    owner: str = ""  # the session that started it (only it may stop it)
    message: str = ""  # why it ended, when it did not finish


def _train(size: str, steps: int, seconds: float, folder: Path) -> None:
    """The child process (`python -m demo.training …`): train, print each step's losses as a JSON
    line, save a snapshot every SNAPSHOT_EVERY steps and say so."""
    os.nice(19)  # below every request of the server
    import torch

    from vlp.checkpoint import save_checkpoint
    from vlp.data import WorldBatches, build_tokenizer
    from vlp.model import VLP, config_for
    from vlp.schedule import lr_at
    from vlp.train import TrainConfig, new_optimizer, prepare_for_training, train_step

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    tok = build_tokenizer()
    net = VLP(config_for(size, len(tok), tok.eos_id), pad_id=tok.pad_id)
    cfg = TrainConfig(size=size, steps=steps, batch_size=BATCH, lr=LR, warmup=max(1, steps // 20), final_lr=0.0,
                      cpu_bf16=True, itm_negatives=1)
    prepare_for_training(net, cpu, cfg)
    optimizer = new_optimizer(net, cfg, cpu)
    data = WorldBatches("train", tok, net.config.vision, seed=0)
    say = lambda **report: print(json.dumps(report), flush=True)  # noqa: E731
    start = time.perf_counter()
    for i in range(steps):
        if time.perf_counter() - start > seconds:
            say(end="time")
            return
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i, cfg)
        net.train()
        losses = train_step(net, optimizer, data.batch(i, BATCH), cpu, cfg)
        say(step=i + 1, losses={k: float(v) for k, v in losses.items()}, seconds=time.perf_counter() - start)
        if (i + 1) % SNAPSHOT_EVERY == 0 or i + 1 == steps:
            save_checkpoint(net.eval(), tok, folder)
            say(snapshot=i + 1)
    say(end="finished")


class Busy(BadArgument):
    """Another visitor's run holds the server's one training slot."""


class LiveRun:
    """The server's one training run. `start` and `stop` come from visitors' requests; `view` and
    `model` are what their pages read; `on_snapshot(model)` (run by the watcher) draws what the
    page shows of each new snapshot."""

    def __init__(self, folder: Path | None = None, on_snapshot=None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="vlp-train-")) / "snapshot"
        self.on_snapshot = on_snapshot
        self._lock = threading.Lock()
        self._view = RunView()
        self._model = None
        self._process = None
        self._stopped = False

    def start(self, size: str, steps, owner: str) -> None:
        if size not in SIZES:
            raise BadArgument(f"The model size is one of {', '.join(SIZES)}, not {size!r}.")
        steps = whole_number(steps, "number of steps", 1, MAX_TRAIN_STEPS)
        with self._lock:
            if self._view.status in ("starting", "running"):
                raise Busy(f"A run is in progress (step {self._view.step} of {self._view.steps}); "
                           "one runs at a time on this server. Watch it here, or start yours when it ends.")
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            with open(self.folder.parent / "stderr.txt", "wb") as messages:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "demo.training", size, str(steps), str(MAX_TRAIN_SECONDS), str(self.folder)],
                    stdout=subprocess.PIPE, stderr=messages, text=True, cwd=ROOT)
            atexit.register(self._process.kill)  # a run never outlives the server
            self._stopped = False
            self._view = RunView(status="starting", size=size, steps=steps, owner=owner)
            self._model = None
        threading.Thread(target=self._watch, args=(self._process, self._view), daemon=True).start()

    def stop(self, owner: str) -> None:
        with self._lock:
            if self._view.status not in ("starting", "running"):
                raise BadArgument("No run is in progress.")
            if owner != self._view.owner:
                raise BadArgument("Only the visitor who started this run can stop it.")
            self._stopped = True
            self._process.terminate()

    def view(self) -> RunView:
        with self._lock:
            return RunView(**{**self._view.__dict__, "losses": list(self._view.losses)})

    def model(self):
        """The model of the last snapshot (a vlp VLPModel), or None before the first."""
        with self._lock:
            return self._model

    def _watch(self, process, view: RunView) -> None:
        """Read the child's reports until it ends; load each snapshot. `view` is this run's: a
        run started after this one ended has its own, which this watcher never touches."""
        for line in process.stdout:
            try:
                report = json.loads(line)
            except json.JSONDecodeError:  # a library's stray print: not a report
                continue
            if "step" in report:
                with self._lock:
                    view.status, view.step, view.seconds = "running", report["step"], report["seconds"]
                    view.losses += [{"step": report["step"], "objective": k, "loss": v}
                                    for k, v in report["losses"].items()]
            elif "snapshot" in report:
                self._load(view, report["snapshot"])
            elif report.get("end") == "time":
                self._end(view, "stopped", f"Stopped at the time limit ({MAX_TRAIN_SECONDS} s).")
            else:
                self._end(view, "finished", "")
        process.wait()
        if view.status in ("starting", "running"):
            stopped = self._stopped and self._view is view
            self._end(view, "stopped" if stopped else "failed", "" if stopped else (
                f"The training process ended with code {process.returncode} "
                f"(its messages: {self.folder.parent / 'stderr.txt'})."))

    def _load(self, view: RunView, step: int) -> None:
        import vlp
        from vlp.errors import VLPError

        try:
            model = vlp.load(str(self.folder), device="cpu")
        except VLPError:  # caught between two snapshots' renames: the next one will load
            return
        with self._lock:
            current = self._view is view
        if current and self.on_snapshot is not None:
            self.on_snapshot(model)
        with self._lock:
            if self._view is view:
                self._model, view.snapshot = model, step

    def _end(self, view: RunView, status: str, message: str) -> None:
        with self._lock:
            view.status, view.message = status, message


if __name__ == "__main__":
    _train(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
