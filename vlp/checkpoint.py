"""Checkpoint folders on disk: safetensors weights + JSON, written so that a crash never loses one.

A vlp checkpoint is a folder of `config.json` (the model's sizes), `model.safetensors`,
`tokenizer.json` and, when measured, `metrics.json`. No pickle is read or written.

Folders are replaced with `vlp.atomic.atomic_folder`: a crash at any instant of a save leaves
the old or the new checkpoint loadable.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vlp.atomic import atomic_folder, recover
from vlp.errors import BadCheckpoint
from vlp.model import VLP, VLPConfig
from vlp.tokenizer import Tokenizer

FORMAT = "vlp-1"
FILES = ("config.json", "model.safetensors", "tokenizer.json")  # metrics.json is optional


def fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """A short sha256 over the names and bytes of the weights, independent of the file format."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


# --- vlp checkpoints --------------------------------------------------------------------------


def write_checkpoint(net: VLP, tokenizer: Tokenizer, folder: Path, metrics: dict | None = None,
                     extra: dict | None = None) -> None:
    """The checkpoint files, into an existing folder (see `save_checkpoint` for the atomic form)."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    config = {"format": FORMAT, "model": net.config.to_dict(), **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save(folder / "tokenizer.json")
    if metrics:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))


def save_checkpoint(net: VLP, tokenizer: Tokenizer, path, metrics: dict | None = None,
                    extra: dict | None = None) -> None:
    """config.json + model.safetensors + tokenizer.json (+ metrics.json), replacing `path` atomically."""
    with atomic_folder(path) as tmp:
        write_checkpoint(net, tokenizer, tmp, metrics, extra)


def is_checkpoint(path) -> bool:
    """Whether `path` holds a vlp checkpoint (after recovering an interrupted save)."""
    path = Path(path)
    recover(path)
    return (path / "config.json").is_file()


def read_checkpoint(path) -> tuple[VLP, Tokenizer, dict]:
    """(network on the CPU, tokenizer, metrics) from a checkpoint folder.

    Raises:
        BadCheckpoint: a file is missing or cannot be read (one sentence).
    """
    path = Path(path)
    recover(path)
    for name in FILES:
        if not (path / name).is_file():
            raise BadCheckpoint(f"The checkpoint at {path} is incomplete: {name} is missing.")
    try:
        config = VLPConfig.from_dict(json.loads((path / "config.json").read_text())["model"])
        tokenizer = Tokenizer.load(path / "tokenizer.json")
        net = VLP(config, pad_id=tokenizer.pad_id)
        net.load_state_dict(load_file(path / "model.safetensors"), strict=True)
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except Exception as err:  # a corrupt file fails in many ways; a person needs one sentence
        raise BadCheckpoint(f"The checkpoint at {path} could not be read ({type(err).__name__}: {err}).") from None
    return net, tokenizer, metrics
