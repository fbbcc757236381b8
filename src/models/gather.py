"""Collect per-sample validation outputs across DDP ranks without the duplicates of sampler padding."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


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
