"""Training survives being killed: `python -m vlp train --resume` goes on from the last whole
checkpoint, says from which step, and metrics.jsonl keeps one row a step.

The trainer is killed with SIGKILL while it trains, saves, validates or plots. Importing torch
and vlp.train takes seconds here, so a parent process imports them once and forks each run of
`python -m vlp train` (`vlp.__main__.main` with its arguments), which the test kills. Bounded:
at most 4 killed runs and one left to finish, no new killed run after 15 s.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TRAINER = """
import json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import torch
import vlp.__main__, vlp.evaluate, vlp.train
torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: seconds

for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            sys.argv = ["vlp", *json.loads(line)]
            code = vlp.__main__.main(sys.argv[1:])
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    os.write(1, f"pid {pid}\\n".encode())  # one write each: never torn or interleaved with the child's
    # on a line of its own after whatever line a kill cut off (an unbuffered print writes word by word)
    os.write(1, f"\\nended {os.waitpid(pid, 0)[1]}\\n".encode())
"""


def complete_steps(out: Path) -> set[int]:
    """The steps of the whole checkpoints on disk: the folder, and versions a save left beside it."""
    folders = [out / "checkpoint", *out.glob(".checkpoint.ready-*"), *out.glob(".checkpoint.old-*")]
    return {json.loads((f / "state.json").read_text())["step"] for f in folders if (f / "state.json").is_file()}


def test_a_killed_training_resumes_from_its_last_checkpoint_and_logs_each_step_once(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--steps", "16", "--batch-size", "2", "--eval-every", "8",
            "--eval-scenes", "2", "--final-eval", "0", "--device", "cpu", "--no-progress", "--resume"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env=env, text=True, cwd=ROOT)
    resumed = re.compile(rf"resumed from step (\d+) \(checkpoint at {re.escape(str(out / 'checkpoint'))}\)")
    rng, validated = random.Random(0), 0  # validated: the last step whose validation a run printed (after saving it)

    def run(kill_after) -> list[str]:
        """One run, killed when `kill_after()` returns (None: left to finish); the lines it printed."""
        trainer.stdin.write(json.dumps(args) + "\n")
        trainer.stdin.flush()
        pid = int(trainer.stdout.readline().split()[1])
        lines = [trainer.stdout.readline().strip()]  # where it starts from, printed before training
        if kill_after is not None:
            kill_after()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it finished first
                pass
        for line in iter(trainer.stdout.readline, ""):
            if line.startswith("ended"):  # dead, its locks gone
                return lines + [line.strip()]
            if line.strip():  # (the blank line "ended" starts with)
                lines.append(line.strip())
        raise AssertionError("the trainer process died")

    def after_row_10():  # step 10 logged, its checkpoint (16) not yet saved
        while not (out / "metrics.jsonl").is_file() or '{"step": 10,' not in (out / "metrics.jsonl").read_text():
            time.sleep(0.01)

    try:
        deadline, killed = time.monotonic() + 15, 0
        while killed < 4 and time.monotonic() < deadline:
            on_disk = complete_steps(out)
            lines = run(after_row_10 if killed == 0 else lambda: time.sleep(rng.uniform(0.0, 1.2)))
            killed += 1
            if on_disk:  # never from step 0 while a whole checkpoint exists, nor from before a printed one
                step = resumed.fullmatch(lines[0])
                assert step, f"checkpoints of steps {on_disk} on disk, yet: {lines[0]}"
                assert int(step[1]) in on_disk and int(step[1]) >= validated, (lines[0], on_disk, validated)
            else:
                assert lines[0] == f"no checkpoint at {out / 'checkpoint'}; starting from step 0", lines[0]
            validated = max([validated] + [json.loads(line)["step"] for line in lines if line.startswith('{"step"')])
        lines = run(None)
        assert lines[-1] == "ended 0" and "trained 16 steps" in lines[-2], lines
        assert resumed.fullmatch(lines[0]) and int(resumed.fullmatch(lines[0])[1]) >= max(validated, 8), lines[0]
    finally:
        trainer.stdin.close()
        trainer.kill()
        trainer.wait()
    assert killed >= 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]  # no torn line
    assert [r["step"] for r in rows if "val" not in r] == [0, 10, 15]  # each logged step once
    val_steps = [r["step"] for r in rows if "val" in r]
    # (a run killed while validating, after its save, leaves no val row for that step)
    assert len(val_steps) == len(set(val_steps)) and set(val_steps) <= {8, 16}
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "loss.png", "metrics.jsonl", "model"]
