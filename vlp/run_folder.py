"""What a training run keeps in its folder: the state it resumes from (`checkpoint/`, written
atomically), `metrics.jsonl` and `loss.png`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vlp.atomic import atomic_folder
from vlp.checkpoint import write_checkpoint


def save_state(folder: Path, net, tokenizer, optimizer, step: int, elapsed: float, steps: int) -> None:
    """Model checkpoint + optimiser tensors (safetensors) + counters and RNG (JSON), atomically."""
    with atomic_folder(folder) as tmp:
        (tmp / "model").mkdir()
        write_checkpoint(net, tokenizer, tmp / "model")
        opt = optimizer.state_dict()
        tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in opt["state"].items() for k, v in s.items()}
        save_file(tensors, tmp / "optimizer.safetensors")
        save_file({"cpu": torch.get_rng_state()}, tmp / "rng.safetensors")
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
        (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, "steps": steps,
                                                    "param_groups": groups}))


def metrics_log(path: Path, start: int):
    """metrics.jsonl, opened for appending, without the rows of the steps from `start` on: a run
    killed after its last checkpoint had logged steps that the resumed run does and logs again
    (and maybe half a line). A run from step 0 starts a new file."""
    def before_start(line: str) -> bool:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return False
        return row["step"] <= start if "val" in row else row["step"] < start  # val: steps done; else: index

    lines = path.read_text().splitlines() if path.is_file() else []
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines if before_start(line)))
    os.replace(tmp, path)  # a kill here leaves the old file whole
    return open(path, "a")


def load_state(folder: Path, net, optimizer, device) -> tuple[int, float, int]:
    """Restores the model, optimiser and RNG; returns the steps done, the seconds they took and
    the run's step count then (0 if the checkpoint does not say)."""
    net.load_state_dict(load_file(folder / "model" / "model.safetensors", device=str(device)))
    meta = json.loads((folder / "state.json").read_text())
    state: dict[int, dict] = {}
    for key, value in load_file(folder / "optimizer.safetensors", device=str(device)).items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    for s in state.values():
        if "step" in s:
            s["step"] = s["step"].cpu()  # AdamW keeps its step counter on the CPU unless fused
            if optimizer.defaults.get("fused"):
                s["step"] = s["step"].to(device)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(load_file(folder / "rng.safetensors")["cpu"])
    return meta["step"], meta["elapsed_s"], meta.get("steps", 0)  # 0: saved before plans were kept


def plot_losses(metrics_file: Path, png: Path, losses) -> None:
    """The training losses named `losses` (those the run computed) and the validation scores,
    against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if "itc" in r]
    val_rows = [r for r in rows if "val" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in (k for k in losses if train_rows and k in train_rows[-1]):
        ax1.plot([r["step"] for r in train_rows], [r[key] for r in train_rows], label=key)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_title("training losses")
    ax1.legend()
    if val_rows:
        for key in val_rows[-1]["val"]:
            ax2.plot([r["step"] for r in val_rows], [r["val"].get(key) for r in val_rows], marker="o", label=key)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("step")
    ax2.set_title("validation")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
