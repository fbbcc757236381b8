"""Inputs at the edges: file names that are not UTF-8 (identities with a single image: tests/data/test_triplets.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from src.data.records import image_records
from src.io.classification import write_classification_csv


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_non_utf8_file_names_are_listed_and_written_back_as_their_bytes(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"  # latin-1 byte, invalid in UTF-8
    Image.fromarray(np.zeros((128, 64, 3), dtype=np.uint8)).save(raw.decode("utf-8", "surrogateescape"), format="JPEG")
    records = image_records(tmp_path)
    assert len(records) == 1
    out = write_classification_csv(tmp_path / "out.csv", [records[0].name], np.zeros((1, 12), dtype=int))
    assert b"caf\xe9.jpg" in out.read_bytes()
