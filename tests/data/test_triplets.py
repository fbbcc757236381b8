"""src/data/triplets.py: (anchor, positive, negative) samples for the report's aggregator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.data.datasets import ImageDataset
from src.data.records import DataError, ImageRecord
from src.data.triplets import TripletDataset


def test_identity_with_one_image_is_never_an_anchor_but_serves_as_negative():
    records = [ImageRecord(Path(f"{pid}_{k}.jpg"), pid, 1, (0,) * 12) for pid, n in ((1, 3), (2, 2), (3, 1)) for k in range(n)]
    dataset = TripletDataset(records)
    assert len(dataset) == 5
    lonely = next(i for i, r in enumerate(records) if r.pid == 3)
    seen_negatives = set()
    for _ in range(200):
        for item in range(len(dataset)):
            triplet = dataset[item]
            assert triplet["anchor"] != lonely and triplet["positive"] != lonely
            assert records[triplet["anchor"]].pid == records[triplet["positive"]].pid
            assert triplet["anchor"] != triplet["positive"]
            assert records[triplet["negative"]].pid != records[triplet["anchor"]].pid
            seen_negatives.add(triplet["negative"])
    assert lonely in seen_negatives


def test_triplets_need_two_identities():
    with pytest.raises(DataError, match="two identities"):
        TripletDataset([ImageRecord(Path(f"{k}.jpg"), 1, 1, (0,) * 12) for k in range(3)])


def test_triplets_need_an_identity_with_two_images():
    with pytest.raises(DataError, match="at least one identity with two images"):
        TripletDataset([ImageRecord(Path(f"{k}.jpg"), k, 1, (0,) * 12) for k in range(3)])


def test_with_images_each_sample_carries_the_images_of_its_three_records(tmp_path):
    records = [ImageRecord(tmp_path / f"{pid}_{k}.jpg", pid, 1, (0,) * 12) for pid in (1, 2) for k in range(2)]
    cache = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()  # image i is all i
    dataset = TripletDataset(records, ImageDataset(records, 2, 2, cache=cache))
    for item in range(len(dataset)):
        triplet = dataset[item]
        for role in ("anchor", "positive", "negative"):
            assert torch.allclose(triplet[f"{role}_image"], torch.full((3, 2, 2), triplet[role] / 255))
