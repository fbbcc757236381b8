"""P x K identity sampler: each batch holds P identities with K images each."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import Sampler


class IdentitySampler(Sampler[int]):
    """Yields indices in groups of K per identity, P identities per batch (batch_size = P * K).

    Identities with fewer than K images are resampled with replacement. One epoch visits every
    identity ``ceil(images / K)`` times on average, so it covers about as many images as the dataset.
    """

    def __init__(self, pids: list[int], num_instances: int = 4, seed: int = 0):
        self.num_instances = num_instances
        self.seed = seed
        self.epoch = 0
        self.by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.by_pid[pid].append(index)
        self.length = sum(max(len(v), num_instances) // num_instances * num_instances for v in self.by_pid.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)  # Lightning calls set_epoch each epoch
        chunks = []
        for indices in self.by_pid.values():
            members = torch.tensor(indices)
            if len(members) < self.num_instances:
                members = members[torch.randint(len(members), (self.num_instances,), generator=generator)]
            else:
                members = members[torch.randperm(len(members), generator=generator)]
            usable = len(members) // self.num_instances * self.num_instances
            chunks += list(members[:usable].view(-1, self.num_instances))
        for chunk in torch.randperm(len(chunks), generator=generator).tolist():
            yield from chunks[chunk].tolist()
