"""Inputs at the edges: file names that are not UTF-8, identities with a single image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.records import ImageRecord, image_records
from src.data.triplets import TripletDataset
from src.io.classification import write_classification_csv


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_non_utf8_file_names_are_listed_and_written_back_as_their_bytes(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"  # latin-1 byte, invalid in UTF-8
    Image.fromarray(np.zeros((128, 64, 3), dtype=np.uint8)).save(raw.decode("utf-8", "surrogateescape"), format="JPEG")
    records = image_records(tmp_path)
    assert len(records) == 1
    out = write_classification_csv(tmp_path / "out.csv", [records[0].name], np.zeros((1, 12), dtype=int))
    assert b"caf\xe9.jpg" in out.read_bytes()


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
    from src.data.records import DataError

    with pytest.raises(DataError, match="two identities"):
        TripletDataset([ImageRecord(Path(f"{k}.jpg"), 1, 1, (0,) * 12) for k in range(3)])
