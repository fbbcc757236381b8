"""src/models/feature_cache.py: frozen stage-1 descriptors computed once and read back from disk, keyed by the
checkpoint bytes, the images and the input size."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from src.data.datasets import decode_resized
from src.data.records import ImageRecord
from src.models.feature_cache import cache_key, cached_descriptors


class MeanColour(nn.Module):
    """A 'stage-1 network' whose descriptor is each image's mean colour; counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def descriptor(self, images):
        self.calls += 1
        return images.mean(dim=(2, 3))


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 8, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(path, i, 1))
    ckpt = tmp_path / "stage1.ckpt"
    ckpt.write_bytes(b"weights")
    return ckpt, records


def test_the_key_follows_the_checkpoint_bytes_the_images_and_the_size(setup):
    ckpt, records = setup
    key = cache_key(ckpt, records, 16, 8)
    assert cache_key(ckpt, records, 16, 8) == key
    assert cache_key(ckpt, records, 32, 16) != key
    assert cache_key(ckpt, records[:4], 16, 8) != key
    os.utime(records[2].path, ns=(1, 1))  # an image touched (e.g. replaced by another of the same size)
    touched = cache_key(ckpt, records, 16, 8)
    assert touched != key
    ckpt.write_bytes(b"other weights")
    assert cache_key(ckpt, records, 16, 8) not in (key, touched)


def test_descriptors_are_computed_once_then_read_from_the_cache(setup, tmp_path):
    ckpt, records = setup
    net = MeanColour()
    first = cached_descriptors(net, ckpt, records, tmp_path / "cache", height=16, width=8, batch_size=2)
    expected = torch.stack([decode_resized(r.path, 16, 8).float().div(255).mean(dim=(1, 2)) for r in records])
    torch.testing.assert_close(first, expected)
    assert net.calls == 3  # batches of 2, 2 and 1
    assert len(list((tmp_path / "cache").glob("descriptors-*.pt"))) == 1
    again = cached_descriptors(net, ckpt, records, tmp_path / "cache", height=16, width=8, batch_size=2)
    assert net.calls == 3 and torch.equal(again, first)  # read back, the network not run
    cached_descriptors(net, ckpt, records, tmp_path / "cache", height=8, width=4, batch_size=8)
    assert net.calls == 4 and len(list((tmp_path / "cache").glob("descriptors-*.pt"))) == 2  # another size: computed


def test_preloaded_images_are_used_instead_of_the_files(setup, tmp_path):
    ckpt, records = setup
    images = torch.full((5, 3, 16, 8), 51, dtype=torch.uint8)  # 51 / 255 = 0.2 everywhere
    out = cached_descriptors(MeanColour(), ckpt, records, tmp_path / "cache", height=16, width=8, images=images)
    torch.testing.assert_close(out, torch.full((5, 3), 0.2))
