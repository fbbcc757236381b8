"""The report's AggregatorDataset: (anchor, positive of the same identity, negative of a random other identity).

Identities with a single image cannot give a positive: they are never anchors or positives, but they
still serve as negatives. Sampling uses the worker's torch RNG, seeded by Lightning per epoch/worker.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import Dataset

from src.data.datasets import ImageDataset
from src.data.records import DataError, ImageRecord


class TripletDataset(Dataset):
    """Item = dict(anchor, positive, negative) of record indices, plus their images when ``images`` is given."""

    def __init__(self, records: list[ImageRecord], images: ImageDataset | None = None):
        self.records, self.images = records, images
        by_pid: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            by_pid[record.pid].append(index)
        self.by_pid = {pid: torch.tensor(v) for pid, v in by_pid.items()}
        self.anchors = [i for i, r in enumerate(records) if len(by_pid[r.pid]) > 1]
        if not self.anchors or len(by_pid) < 2:
            raise DataError("triplets need at least one identity with two images and two identities in the training split")
        self.pids = torch.tensor([r.pid for r in records])

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, item: int) -> dict:
        anchor = self.anchors[item]
        pid = self.records[anchor].pid
        same = self.by_pid[pid]
        others = same[same != anchor]
        positive = int(others[torch.randint(len(others), (1,))])
        negative = int(torch.randint(len(self.records), (1,)))
        while self.records[negative].pid == pid:
            negative = int(torch.randint(len(self.records), (1,)))
        out = {"anchor": anchor, "positive": positive, "negative": negative}
        if self.images is not None:
            out.update({f"{k}_image": self.images[v]["image"] for k, v in list(out.items())})
        return out
