"""Datasets only load (or look up) images and transform them; parsing lives in records/sources."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from src.data.attributes import HEADS
from src.data.images import load_image
from src.data.records import ImageRecord

NO_LABELS = tuple(-1 for _ in HEADS)


def decode_resized(path, height: int, width: int) -> torch.Tensor:
    image = load_image(path, max_side=4 * max(height, width))
    if image.shape[1:] != (height, width):
        image = F.resize(image, [height, width], antialias=True)
    return image


class ImageDataset(Dataset):
    """Records -> dict(image, labels, pid, camid, index). ``cache`` holds pre-decoded uint8 images."""

    def __init__(self, records: list[ImageRecord], height: int, width: int, transform=None, cache: torch.Tensor | None = None):
        self.records = records
        self.height, self.width = height, width
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index]
        return decode_resized(self.records[index].path, self.height, self.width)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image = self.image(index)
        image = self.transform(image) if self.transform is not None else F.to_dtype(image, torch.float32, scale=True)
        return {
            "image": image,
            "labels": torch.tensor(record.labels if record.labels is not None else NO_LABELS, dtype=torch.long),
            "pid": record.pid,
            "camid": record.camid,
            "index": index,
        }


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
