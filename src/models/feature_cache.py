"""Frozen stage-1 descriptors computed once per (checkpoint, images, transform) and kept on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from src.data.datasets import ImageDataset
from src.data.records import ImageRecord, file_digest
from src.io.atomic import atomic_path
from src.models.outputs import map_batches


def cache_key(ckpt_path: str | Path, records: list[ImageRecord], height: int, width: int) -> str:
    """Changes when the checkpoint bytes, any image (path, size, mtime) or the input size change."""
    digest = hashlib.sha256(f"{file_digest(ckpt_path)}|{height}x{width}".encode())
    for record in records:
        stat = record.path.stat()
        digest.update(f"{record.path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cached_descriptors(
    net, ckpt_path: str | Path, records: list[ImageRecord], cache_dir: str | Path, *,
    height: int, width: int, batch_size: int = 256, num_workers: int = 0, images: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, 543) descriptors of ``records`` from the frozen network, loaded from ``cache_dir`` when present."""
    path = Path(cache_dir) / f"descriptors-{cache_key(ckpt_path, records, height, width)}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored["names"] == [str(r.path) for r in records]:
            return stored["descriptors"]
    dataset = ImageDataset(records, height, width, cache=images)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    net = net.eval()
    descriptors = map_batches(lambda images: {"descriptor": net.descriptor(images)}, loader,
                              "stage-1 descriptors").values["descriptor"]
    with atomic_path(path) as tmp:
        torch.save({"names": [str(r.path) for r in records], "descriptors": descriptors}, tmp)
    return descriptors
