"""Batch-norm statistics over all DDP processes, on the CPU (gloo) as on GPUs.

torch's SyncBatchNorm (Lightning's `sync_batchnorm=True`) refuses CPU tensors, and its converter replaces timm's
BatchNormAct2d by a plain SyncBatchNorm, dropping the activation. This plugin keeps every batch-norm module (and
its state-dict keys) and only routes its training forward through one all-reduce of the per-channel sum, sum of
squares and count, differentiable, so the step equals one process on the global batch.
"""
from __future__ import annotations

import types

import torch
from pytorch_lightning.plugins import LayerSync
from timm.layers import BatchNormAct2d
from torch import nn

from src.models.gather import SumOverRanks, several_ranks


def global_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Normalise x with the mean and variance of the batch across all processes; update the running statistics."""
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    values = x.float()
    local = torch.cat([values.sum(dims), (values * values).sum(dims),
                       values.new_tensor([values.numel() / channels])])
    total = SumOverRanks.apply(local)
    count = total[-1]
    mean = total[:channels] / count
    var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0)
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), factor)
            unbiased = var * count / (count - 1).clamp_min(1)
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), factor)
    shape = [1, channels] + [1] * (x.dim() - 2)
    scale = torch.rsqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return (values * scale.view(shape) + shift.view(shape)).to(x.dtype)


def _synchronised_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not (self.training and several_ranks()):
        return type(self).forward(self, x)
    y = global_batch_norm(self, x)
    if isinstance(self, BatchNormAct2d):
        y = self.act(self.drop(y))
    return y


def _batch_norms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class GlobalBatchNorm(LayerSync):
    """Lightning plugin (trainer.plugins): every batch norm uses the statistics of the global batch while fitting."""

    def apply(self, model: nn.Module) -> nn.Module:
        for bn in _batch_norms(model):
            bn.forward = types.MethodType(_synchronised_forward, bn)
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        for bn in _batch_norms(model):
            bn.__dict__.pop("forward", None)
        return model
