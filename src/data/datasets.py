"""Datasets only load (or look up) images and transform them; parsing lives in records/sources."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from src.data.attributes import HEADS
from src.data.images import load_image
from src.data.records import DataError, ImageRecord

NO_LABELS = tuple(-1 for _ in HEADS)


def decode_resized(path, height: int, width: int) -> torch.Tensor:
    image = load_image(path, max_side=4 * max(height, width))
    if image.shape[1:] != (height, width):
        image = F.resize(image, [height, width], antialias=True)
    return image


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63 - 1)


class ImageDataset(Dataset):
    """Records -> dict(image, labels, pid, camid, index). ``cache`` holds pre-decoded uint8 images.

    A key ``epoch * len(self) + index`` (from ``EpochKeyedSampler``) draws the random transform from a generator
    seeded by (``seed``, epoch, index): the same augmentation whichever loader worker decodes the sample and
    whether or not the run was resumed from a checkpoint in between. A plain index uses the global generator.

    ``skip_unreadable`` (inference over folders: index, search): an unreadable file gives ``ok=False``, its error and
    a blank image instead of raising; the batch loop (``src/models/outputs.py``) leaves it out and reports it.
    """

    def __init__(self, records: list[ImageRecord], height: int, width: int, transform=None, cache: torch.Tensor | None = None,
                 seed: int = 0, skip_unreadable: bool = False):
        self.records = records
        self.height, self.width = height, width
        self.transform = transform
        self.cache = cache
        self.seed = seed
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index]
        return decode_resized(self.records[index].path, self.height, self.width)

    def __getitem__(self, key: int) -> dict:
        epoch, index = divmod(int(key), len(self.records))
        record = self.records[index]
        ok, error = True, ""
        try:
            image = self.image(index)
        except DataError as err:
            if not self.skip_unreadable:
                raise
            ok, error, image = False, str(err), torch.zeros(3, self.height, self.width, dtype=torch.uint8)
        if self.transform is None:
            image = F.to_dtype(image, torch.float32, scale=True)
        elif key >= len(self.records) or isinstance(key, EpochKey):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, epoch, index))
                image = self.transform(image)
        else:
            image = self.transform(image)
        return {
            "image": image,
            "labels": torch.tensor(record.labels if record.labels is not None else NO_LABELS, dtype=torch.long),
            "pid": record.pid,
            "camid": record.camid,
            "index": index,
            "ok": ok,
            "error": error,
        }


class EpochKey(int):
    """A sample key of epoch 0 (equal to its index), marked as seeded by EpochKeyedSampler."""


class EpochKeyedSampler(DistributedSampler):
    """Wraps an index order (or a permutation seeded by (seed, epoch)) into keys ``epoch * size + index``.

    Lightning calls ``set_epoch`` before every training epoch; the order and every sample's augmentation then depend
    only on (seed, epoch), never on the global random state or on loader workers that persist across epochs.

    With ``num_replicas`` > 1 (DDP) each rank takes every ``num_replicas``-th group of ``group`` consecutive indices
    (``group`` = K of a P x K order, so identity groups stay whole on one rank), every rank the same number of
    groups. It is a ``DistributedSampler`` so that Lightning does not wrap it again (its wrapper would deal single
    indices round robin and split every identity group across the ranks).
    """

    def __init__(self, size: int, seed: int = 0, order: Sampler | None = None, num_replicas: int = 1, rank: int = 0):
        self.size, self.seed, self.order, self.epoch = size, seed, order, 0
        self.num_replicas, self.rank = num_replicas, rank
        self.group = getattr(order, "num_instances", 1)
        self.shuffle, self.drop_last = True, True  # what Lightning reads of a DistributedSampler

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if callable(getattr(self.order, "set_epoch", None)):
            self.order.set_epoch(epoch)

    def __len__(self) -> int:
        total = len(self.order) if self.order is not None else self.size
        return total // self.group // self.num_replicas * self.group

    def __iter__(self):
        if self.order is not None:
            indices = list(self.order)
        else:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, 0))
            indices = torch.randperm(self.size, generator=generator).tolist()
        if self.num_replicas > 1:
            groups = [indices[i:i + self.group] for i in range(0, len(indices), self.group)]
            indices = [index for chunk in groups[self.rank::self.num_replicas][:len(self) // self.group] for index in chunk]
        offset = self.epoch * self.size
        for index in indices:
            yield offset + index if offset else EpochKey(index)


class _Decode(Dataset):
    def __init__(self, records, height, width):
        self.records, self.height, self.width = records, height, width

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return decode_resized(self.records[index].path, self.height, self.width)


def preload(records: list[ImageRecord], height: int, width: int, num_workers: int = 0, desc: str = "decoding") -> torch.Tensor:
    """Decode and resize every image once into one uint8 tensor (N, 3, H, W), in parallel workers."""
    out = torch.empty((len(records), 3, height, width), dtype=torch.uint8)
    loader = DataLoader(_Decode(records, height, width), batch_size=256, num_workers=num_workers)
    start = 0
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
        out[start : start + len(batch)] = batch
        start += len(batch)
    return out
