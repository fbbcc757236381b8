"""Across DDP ranks: per-sample validation outputs without the duplicates of sampler padding, and the global
training batch for losses that compare samples with each other (batch-hard triplet)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.distributed as dist


def gather_unique(module: pl.LightningModule, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """All-gather tensors keyed like ``parts`` (which must hold ``index``), keep one row per index, sorted by it.

    DistributedSampler pads every rank to the same length by repeating samples; deduplicating by
    dataset index makes validation metrics equal to the single-process ones.
    """
    if module.trainer is not None and module.trainer.world_size > 1:
        parts = {k: module.all_gather(v).flatten(0, 1) for k, v in parts.items()}
    order = torch.argsort(parts["index"], stable=True)
    sorted_index = parts["index"][order]
    keep = torch.ones_like(sorted_index, dtype=torch.bool)
    keep[1:] = sorted_index[1:] != sorted_index[:-1]
    return {k: v[order[keep]] for k, v in parts.items()}


def several_ranks() -> bool:
    """True inside a process group of more than one process (DDP); False in a single process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (features, targets) concatenated in rank order, on every rank (unchanged with one process).

    The features keep their gradient: the autograd all-gather's backward sums each rank's share, so a loss over the
    global batch, averaged by DDP's gradient all-reduce, has the gradient of that loss in one process. Ranks must
    hold equal batch sizes (the identity sampler gives each the same number of P x K groups).
    """
    if not several_ranks():
        return features, targets
    gathered_targets = [torch.empty_like(targets) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered_targets, targets.contiguous())
    return _GatherWithGradients.apply(features), torch.cat(gathered_targets)


class _GatherWithGradients(torch.autograd.Function):
    """All-gather whose backward sums the global batch's gradient over the ranks and keeps this rank's rows."""

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(features) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, features.contiguous())
        ctx.rows = len(features)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.contiguous().clone()
        dist.all_reduce(gradient)
        start = dist.get_rank() * ctx.rows
        return gradient[start : start + ctx.rows]


class SumOverRanks(torch.autograd.Function):
    """All-reduce sum whose backward is the all-reduce sum of the gradients (every rank's loss depends on the sum)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        total = values.contiguous().clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return SumOverRanks.forward(ctx, gradient)
