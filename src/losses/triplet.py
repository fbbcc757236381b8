"""Batch-hard triplet loss (Hermans et al. 2017), vectorised with identity masks."""

from __future__ import annotations

import torch
from torch import nn


class BatchHardTripletLoss(nn.Module):
    """For each anchor: its farthest positive and nearest negative in the batch.

    ``margin=None`` uses the soft margin ``log(1 + exp(d_ap - d_an))``.
    """

    def __init__(self, margin: float | None = 0.3, normalize: bool = False):
        super().__init__()
        self.margin, self.normalize = margin, normalize

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = nn.functional.normalize(features, dim=1)
        distances = torch.cdist(features, features).clamp_min(1e-12)
        same = pids.unsqueeze(0) == pids.unsqueeze(1)
        eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
        positives, negatives = same & ~eye, ~same
        valid = positives.any(1) & negatives.any(1)
        if not valid.any():
            return features.sum() * 0.0
        hardest_positive = distances.masked_fill(~positives, float("-inf")).amax(1)[valid]
        hardest_negative = distances.masked_fill(~negatives, float("inf")).amin(1)[valid]
        if self.margin is None:
            return nn.functional.softplus(hardest_positive - hardest_negative).mean()
        return nn.functional.relu(hardest_positive - hardest_negative + self.margin).mean()
