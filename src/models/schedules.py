"""Learning-rate schedules as config-friendly factories (optimizer -> scheduler)."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer, warmup_epochs: int = 5, max_epochs: int = 60, warmup_factor: float = 0.1, min_factor: float = 0.01):
    """Linear warm-up from ``warmup_factor`` to 1, then cosine decay to ``min_factor`` (per epoch)."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return warmup_factor + (1 - warmup_factor) * epoch / max(1, warmup_epochs)
        progress = min(1.0, (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_step(optimizer, warmup_epochs: int = 10, milestones=(40, 70), gamma: float = 0.1, warmup_factor: float = 0.01):
    """Bag-of-tricks schedule: linear warm-up, then multiply by ``gamma`` at each milestone."""

    def factor(epoch: int) -> float:
        warm = warmup_factor + (1 - warmup_factor) * min(1.0, epoch / max(1, warmup_epochs))
        return warm * gamma ** sum(epoch >= m for m in milestones)

    return LambdaLR(optimizer, factor)
