"""Class weights from the effective number of samples (Cui et al., CVPR 2019) for the attribute heads whose classes
are far from balanced (the colours: a few images of purple or yellow against thousands of black)."""

from __future__ import annotations

import torch


def class_balanced_weights(labels: torch.Tensor, num_classes: int, beta: float) -> torch.Tensor:
    """Weight of class c proportional to ``(1 - beta) / (1 - beta ** n_c)`` (``n_c`` images of it; beta 0: all equal,
    beta -> 1: the inverse frequency), scaled so that the mean weight over the images is 1 (the loss keeps its scale).
    A class without images gets the weight of a class with one."""
    counts = torch.bincount(labels[labels >= 0], minlength=num_classes).double()
    weights = (1 - beta) / (1 - beta ** counts.clamp(min=1))
    return (weights * counts.sum() / (weights * counts).sum()).float()
