"""Focal cross-entropy (Lin et al., ICCV 2017) for softmax heads: each image's loss scaled by ``(1 - p_t) ** gamma``,
so the many easy images of the frequent colours weigh less than the hard and rare ones."""

from __future__ import annotations

import torch


def focal_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, gamma: float,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over images of ``(1 - p_t) ** gamma x cross-entropy``; with class ``weight`` the weighted mean, as
    ``F.cross_entropy(weight=...)`` takes it. ``gamma`` 0 is the plain cross-entropy."""
    log_p = logits.log_softmax(1).gather(1, targets.unsqueeze(1)).squeeze(1)
    losses = -((1 - log_p.exp()).clamp_min(0) ** gamma) * log_p
    if weight is None:
        return losses.mean()
    image_weights = weight.to(losses.dtype)[targets]
    return (image_weights * losses).sum() / image_weights.sum()
