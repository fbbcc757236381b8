"""Cluster memory (Cluster Contrast, Dai et al. 2021): one L2-normalised centroid per pseudo identity, restarted at
the cluster means each clustering round and moved towards the batch's features by momentum after every step; the
loss is a softmax over all centroids at a low temperature, so each image is pulled to its cluster and pushed from
every other one, not only from the hardest negative of its batch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from src.metrics.clustering import cluster_means


class ClusterMemory(nn.Module):
    def __init__(self, rows: int, dim: int, temperature: float = 0.05, momentum: float = 0.2):
        """``rows``: room for the most clusters a round may keep; ``momentum``: the old centroid's share at an update."""
        super().__init__()
        if not 0 < temperature or not 0 <= momentum < 1:
            raise ValueError(f"cluster memory: temperature ({temperature}) must be > 0 and momentum ({momentum}) in [0, 1)")
        self.temperature, self.momentum = temperature, momentum
        self.register_buffer("centroids", torch.zeros(rows, dim))  # fixed shape: a checkpoint restores it
        self.register_buffer("in_use", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def restart(self, centroids: torch.Tensor) -> None:
        """A new clustering round: rows ``0 .. len(centroids) - 1`` become the normalised cluster means."""
        self.centroids.zero_()
        self.centroids[: len(centroids)] = F.normalize(centroids.to(self.centroids), dim=1)
        self.in_use.fill_(len(centroids))

    def forward(self, features: torch.Tensor, clusters: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the cosine similarities to the centroids in use (over the temperature); 0 without any."""
        if len(features) == 0 or int(self.in_use) == 0:
            return features.new_zeros(())
        bank = self.centroids[: int(self.in_use)].clone()  # the update after this step must not touch the graph's copy
        logits = F.normalize(features, dim=1) @ bank.to(features.dtype).T / self.temperature
        return F.cross_entropy(logits, clusters)

    @torch.no_grad()
    def update(self, features: torch.Tensor, clusters: torch.Tensor) -> None:
        """Each cluster in the batch: centroid <- normalise(momentum x centroid + (1 - momentum) x its images' mean)."""
        if len(features) == 0:
            return
        present, index = torch.unique(clusters, return_inverse=True)
        means = cluster_means(F.normalize(features.detach().to(self.centroids.dtype), dim=1), index, len(present))
        moved = self.momentum * self.centroids[present] + (1 - self.momentum) * means
        self.centroids[present] = F.normalize(moved, dim=1)
