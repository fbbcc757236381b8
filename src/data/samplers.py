"""How training batches are drawn, chosen by ``data.sampler._target_``: ``RandomImages`` (every image once an epoch),
``IdentityBatches`` (P identities x K images, the strong model), ``Triplets`` (the report's aggregator). Each gives
the training loader's dataset, sampler and ``drop_last`` (``batches``) and checks the batch against the split."""

from __future__ import annotations

import warnings
from collections import defaultdict

import torch
from torch.utils.data import Sampler

from src.data.datasets import EpochKeyedSampler, ImageDataset
from src.data.triplets import TripletDataset


class RandomImages:
    """Every training image once an epoch, in an order keyed by (seed, epoch) (``EpochKeyedSampler``)."""

    def check(self, batch_size: int, num_ids: int, root) -> None:
        """Warn about a batch that the training split cannot fill as asked."""

    def batches(self, images: ImageDataset, batch_size: int, seed: int, **ranks) -> dict:
        return {"dataset": images, "sampler": EpochKeyedSampler(len(images), seed, None, **ranks),
                "drop_last": len(images) > batch_size}


class IdentityBatches(RandomImages):
    """P x K batches (``batch_size`` = P identities x ``num_instances`` K images, ``IdentitySampler``); identity
    groups stay whole on one rank under DDP."""

    def __init__(self, num_instances: int = 4, seed: int = 0, camera_aware: bool = False):
        self.num_instances, self.seed, self.camera_aware = num_instances, seed, camera_aware

    def batches(self, images: ImageDataset, batch_size: int, seed: int, **ranks) -> dict:
        cameras = [r.camid for r in images.records] if self.camera_aware else None
        order = IdentitySampler([r.pid for r in images.records], self.num_instances, self.seed, cameras)
        return {"dataset": images, "sampler": EpochKeyedSampler(len(images), seed, order, **ranks), "drop_last": True}

    def check(self, batch_size: int, num_ids: int, root) -> None:
        if batch_size // self.num_instances > num_ids:
            warnings.warn(f"data.batch_size={batch_size}: {batch_size // self.num_instances} identity groups of "
                          f"data.sampler.num_instances={self.num_instances} images per batch, but the training split of {root} "
                          f"has {num_ids} identities, so every batch repeats some; data.batch_size <= "
                          f"{num_ids * self.num_instances} keeps them distinct", UserWarning, stacklevel=3)


class Triplets(RandomImages):
    """The report's stage 2: shuffled (anchor, positive, negative) index triplets (``TripletDataset``), with their
    images when ``images`` (the uncached path)."""

    def __init__(self, images: bool = False):
        self.images = images

    def batches(self, images: ImageDataset, batch_size: int, seed: int, **ranks) -> dict:
        dataset = TripletDataset(images.records, images if self.images else None)
        return {"dataset": dataset, "shuffle": True, "drop_last": len(dataset) > batch_size}


class IdentitySampler(Sampler[int]):
    """Yields indices in groups of K per identity, P identities per batch (batch_size = P * K).

    Identities with fewer than K images are resampled with replacement. One epoch visits every
    identity ``ceil(images / K)`` times on average, so it covers about as many images as the dataset.
    With ``cameras`` (one per image) each identity's groups of K are dealt to hold as many different cameras as its
    images allow (``_spread_over_cameras``), so its positives are cross-camera ones.
    """

    def __init__(self, pids: list[int], num_instances: int = 4, seed: int = 0, cameras: list[int] | None = None):
        self.num_instances = num_instances
        self.seed = seed
        self.epoch = 0
        self.by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            self.by_pid[pid].append(index)
        self.cameras = None if cameras is None else torch.as_tensor(cameras, dtype=torch.long)
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
                if self.cameras is not None:
                    members = _spread_over_cameras(members, self.cameras[members], self.num_instances, generator)
            usable = len(members) // self.num_instances * self.num_instances
            chunks += list(members[:usable].view(-1, self.num_instances))
        for chunk in torch.randperm(len(chunks), generator=generator).tolist():
            yield from chunks[chunk].tolist()


def _spread_over_cameras(members: torch.Tensor, cameras: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``members`` reordered into consecutive groups of ``k`` with as many different cameras as possible: each pick
    takes the next image of the camera with the most images left among those not yet in the group (ties at random;
    a group repeats cameras only once every camera is in it). Within a camera the given order is kept."""
    queues: dict[int, list[int]] = defaultdict(list)
    for member, camera in zip(members.tolist(), cameras.tolist()):
        queues[camera].append(member)
    if len(queues) == 1:
        return members
    order: list[int] = []
    while sum(len(q) for q in queues.values()) >= k:
        tiebreak = dict(zip(queues, torch.rand(len(queues), generator=generator).tolist()))
        in_group: set[int] = set()
        for _ in range(k):
            candidates = [c for c, q in queues.items() if q and c not in in_group] or [c for c, q in queues.items() if q]
            camera = max(candidates, key=lambda c: (len(queues[c]), tiebreak[c]))
            order.append(queues[camera].pop(0))
            in_group.add(camera)
    order += [m for q in queues.values() for m in q]  # fewer than k left: dropped by the caller
    return torch.tensor(order)
