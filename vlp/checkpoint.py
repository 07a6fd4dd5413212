"""Checkpoint folders on disk: safetensors weights + JSON, written so that a crash never loses one.

A vlp checkpoint is a folder of `config.json` (the model's sizes), `model.safetensors`,
`tokenizer.json` and, when measured, `metrics.json`. No pickle is read or written. The sizes are
checked against `SIZE_BOUNDS` before any tensor is allocated.

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

# What a checkpoint's config.json may ask for, checked before any tensor is allocated: far
# above any vlp model (vlp-tiny: width 128, 4 layers, 57 words), far below what exhausts memory.
# Here, not in vlp.limits (requests) nor on VLPConfig: they bound a file from disk, while code
# may build any config it likes (OpenCLIP's towers, tests).
SIZE_BOUNDS = {  # field of a tower's config: (lowest, highest), whole numbers
    "image_size": (8, 1024), "patch_size": (1, 256), "width": (1, 4096), "image_width": (1, 4096),
    "embed_dim": (1, 4096), "heads": (1, 128), "layers": (1, 128), "context_length": (1, 4096),
    "vocab_size": (1, 1_000_000), "eos_id": (0, 999_999),
}
MAX_MLP_RATIO = 16
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights


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
    config = read_config(path)
    try:
        tokenizer = Tokenizer.load(path / "tokenizer.json")
        net = VLP(config, pad_id=tokenizer.pad_id)
        net.load_state_dict(load_file(path / "model.safetensors"), strict=True)
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except Exception as err:  # a corrupt file fails in many ways; a person needs one sentence
        raise BadCheckpoint(f"The checkpoint at {path} could not be read ({type(err).__name__}: {err}).") from None
    return net, tokenizer, metrics


def read_config(path: Path) -> VLPConfig:
    """The model's sizes from the config.json of the checkpoint at `path`, allocating nothing.

    Raises:
        BadCheckpoint: unreadable, or a size outside `SIZE_BOUNDS`, or a model of more than
            `MAX_PARAMETERS` (one sentence naming the field and its range).
    """
    try:
        config = VLPConfig.from_dict(json.loads((path / "config.json").read_text())["model"])
    except Exception as err:  # a corrupt file fails in many ways; a person needs one sentence
        raise BadCheckpoint(f"The checkpoint at {path} could not be read ({type(err).__name__}: {err}).") from None
    for tower, part in (("vision", config.vision), ("text", config.text), ("decoder", config.decoder)):
        for name, value in vars(part).items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if name in SIZE_BOUNDS:
                low, high = SIZE_BOUNDS[name]
                fine = number and isinstance(value, int) and low <= value <= high
                allowed = f"whole numbers from {low} to {high}"
            elif name == "mlp_ratio":
                fine = number and 0 < value <= MAX_MLP_RATIO
                allowed = f"a number above 0 and at most {MAX_MLP_RATIO}"
            else:
                continue
            if not fine:
                raise BadCheckpoint(f"The checkpoint at {path} is refused: its config.json gives {tower}.{name} "
                                    f"= {repr(value)[:40]}, and vlp reads {allowed}.")
    parameters = _parameters(config)
    if parameters > MAX_PARAMETERS:
        raise BadCheckpoint(f"The checkpoint at {path} is refused: its config.json describes a model of about "
                            f"{parameters:,.0f} parameters, and vlp reads at most {MAX_PARAMETERS:,}.")
    return config


def _parameters(config: VLPConfig) -> float:
    """About how many weights `VLP(config)` holds (blocks, cross-attention, embedding tables)."""
    v, t, d = config.vision, config.text, config.decoder
    blocks = sum(c.layers * (4 + 2 * c.mlp_ratio) * c.width ** 2 for c in (v, t, d))
    cross = d.layers * 2 * d.width * (d.width + d.image_width)
    tables = (((v.image_size // v.patch_size) ** 2 + 3 * v.patch_size ** 2) * v.width
              + (t.vocab_size + t.context_length) * t.width + (2 * d.vocab_size + d.context_length) * d.width)
    return blocks + cross + tables
