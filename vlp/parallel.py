"""Rows from every data-parallel process, for a loss over the whole step's batch.

Contrastive learning gets better with more candidates: with two processes of 64 scenes each,
each text is scored against all 128 images, as in one process of 128 (CLIP gathers the same way).
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class _EveryProcess(torch.autograd.Function):
    """Forward: every process's rows, stacked in rank order. Backward: this process's rows of
    the gradient, times the number of processes. Every process computes the same loss over all
    the rows, so the gradient of its own rows is already whole; data parallelism then averages
    the processes' gradients, and the factor makes that average the whole loss's gradient."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        ctx.mine = slice(dist.get_rank() * len(rows), (dist.get_rank() + 1) * len(rows))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad[ctx.mine] * dist.get_world_size()


def every_process(rows: torch.Tensor) -> torch.Tensor:
    """(B × processes, …) from each process's (B, …), the same B in each; differentiable."""
    return _EveryProcess.apply(rows)
