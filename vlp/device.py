"""The device is chosen once: CUDA when present (with bf16 autocast), else the CPU."""
from __future__ import annotations

import contextlib

import torch

from vlp.errors import BadArgument


def pick_device(name: str | None = "auto") -> torch.device:
    """"auto" (or None) → cuda if available else cpu; otherwise the named device, checked."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadArgument("CUDA was asked for but no CUDA device is available; use --device cpu.")
    return device


def autocast(device: torch.device):
    """bf16 autocast on CUDA; on the CPU a no-op, so results there are plain float32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
