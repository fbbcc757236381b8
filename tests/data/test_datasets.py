"""src/data/datasets.py: decoding to the input size, ImageDataset items (seeded augmentation per epoch key,
unreadable files), the epoch-keyed (DDP-aware) sampler and the preloaded cache."""

from __future__ import annotations

import pytest
import torch

from src.data.datasets import EpochKey, EpochKeyedSampler, ImageDataset, decode_resized, preload, sample_seed
from src.data.images import load_image
from src.data.records import DataError, ImageRecord
from src.data.samplers import IdentitySampler
from tests.data.conftest import identity_records, write_image


def noisy(image: torch.Tensor) -> torch.Tensor:
    """A random 'augmentation' that draws from the global torch generator."""
    return image.float() / 255 + torch.rand(image.shape)


@pytest.fixture
def files(tmp_path) -> list[ImageRecord]:
    return [ImageRecord(write_image(tmp_path / f"000{i}_c1_{i}.png", size=(8, 16)), i, 1, (i,) * 12) for i in range(3)]


def test_decode_resized_gives_the_input_size_and_leaves_an_image_of_that_size_untouched(tmp_path):
    big = write_image(tmp_path / "big.png", size=(20, 30))
    assert decode_resized(big, 16, 8).shape == (3, 16, 8)
    exact = write_image(tmp_path / "exact.png", size=(8, 16))
    assert torch.equal(decode_resized(exact, 16, 8), load_image(exact))


def test_an_item_without_transform_is_the_image_in_zero_one_with_its_labels(files):
    item = ImageDataset(files, 16, 8)[1]
    assert torch.allclose(item["image"], load_image(files[1].path).float() / 255)
    assert item["labels"].tolist() == [1] * 12 and (item["pid"], item["camid"], item["index"], item["ok"]) == (1, 1, 1, True)
    unlabelled = ImageDataset([ImageRecord(files[0].path, -1, -1)], 16, 8)[0]
    assert unlabelled["labels"].tolist() == [-1] * 12


def test_an_epoch_key_seeds_the_augmentation_by_seed_epoch_and_index(files):
    dataset = ImageDataset(files, 16, 8, transform=noisy, seed=5)
    size = len(files)
    before = torch.get_rng_state()
    first = dataset[2 * size + 1]["image"]  # epoch 2, image 1
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left where it was
    assert torch.equal(dataset[2 * size + 1]["image"], first)
    assert not torch.equal(dataset[3 * size + 1]["image"], first)  # another epoch: another draw
    assert not torch.equal(ImageDataset(files, 16, 8, transform=noisy, seed=6)[2 * size + 1]["image"], first)
    assert dataset[2 * size + 1]["index"] == 1
    assert torch.equal(dataset[EpochKey(1)]["image"], dataset[EpochKey(1)]["image"])  # epoch 0, marked as seeded


def test_a_plain_index_draws_from_the_global_generator(files):
    dataset = ImageDataset(files, 16, 8, transform=noisy, seed=5)
    torch.manual_seed(0)
    a = dataset[1]["image"]
    torch.manual_seed(0)
    assert torch.equal(dataset[1]["image"], a)
    assert not torch.equal(dataset[1]["image"], a)  # the stream moved on


def test_a_cache_replaces_decoding(tmp_path):
    records = [ImageRecord(tmp_path / "absent.jpg", 1, 1)]
    cache = torch.full((1, 3, 4, 2), 255, dtype=torch.uint8)
    assert torch.equal(ImageDataset(records, 4, 2, cache=cache)[0]["image"], torch.ones(3, 4, 2))


def test_an_unreadable_file_raises_or_gives_a_blank_flagged_item_with_its_path(tmp_path, files):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    records = [files[0], ImageRecord(broken, -1, -1)]
    with pytest.raises(DataError, match=r"broken\.jpg: cannot decode"):
        ImageDataset(records, 16, 8)[1]
    item = ImageDataset(records, 16, 8, skip_unreadable=True)[1]
    assert not item["ok"] and "broken.jpg: cannot decode" in item["error"]
    assert torch.equal(item["image"], torch.zeros(3, 16, 8))
    assert ImageDataset(records, 16, 8, skip_unreadable=True)[0]["ok"]


def test_preload_equals_decoding_each_image(tmp_path):
    records = [ImageRecord(write_image(tmp_path / f"{i}.png", size=(10 + i, 20)), 1, 1) for i in range(3)]
    cache = preload(records, 16, 8)
    assert cache.dtype == torch.uint8 and cache.shape == (3, 3, 16, 8)
    for i, record in enumerate(records):
        assert torch.equal(cache[i], decode_resized(record.path, 16, 8))


def test_sample_seeds_differ_across_seed_epoch_and_index():
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(4) for i in range(50)}
    assert len(seeds) == 3 * 4 * 50


def test_the_sampler_keys_a_seeded_permutation_by_epoch():
    sampler = EpochKeyedSampler(10, seed=1)
    epoch0 = list(sampler)
    assert all(isinstance(k, EpochKey) for k in epoch0) and sorted(epoch0) == list(range(10)) and len(sampler) == 10
    sampler.set_epoch(3)
    epoch3 = list(sampler)
    assert sorted(epoch3) == list(range(30, 40))
    assert list(EpochKeyedSampler(10, seed=1)) == epoch0  # the same (seed, epoch): the same order
    assert [k - 30 for k in epoch3] != epoch0


def test_the_sampler_follows_an_order_and_passes_it_the_epoch():
    pids = [r.pid for r in identity_records({p: 4 for p in range(4)})]
    order = IdentitySampler(pids, 4, seed=0)
    sampler = EpochKeyedSampler(len(pids), seed=0, order=order)
    sampler.set_epoch(2)
    assert order.epoch == 2
    keys = list(sampler)
    assert keys == [2 * len(pids) + i for i in order]  # the order of epoch 2, keyed by epoch
    order.set_epoch(0)
    assert list(order) != [k - 2 * len(pids) for k in keys]


@pytest.mark.parametrize("pk", [True, False])
def test_ddp_ranks_get_whole_identity_groups_disjoint_and_equal_in_number(pk):
    pids = [r.pid for r in identity_records({p: 5 + p % 4 for p in range(13)})]
    def sampler(rank, world):
        order = IdentitySampler(pids, 4, seed=1) if pk else None
        s = EpochKeyedSampler(len(pids), seed=2, order=order, num_replicas=world, rank=rank)
        s.set_epoch(1)
        return s
    single = [k - len(pids) for k in sampler(0, 1)]  # epoch 1: keys are len(pids) + index
    ranks = [[k - len(pids) for k in sampler(rank, 2)] for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(sampler(0, 2)) > 0
    group = 4 if pk else 1
    for indices in ranks:
        assert len(indices) % group == 0
        for start in range(0, len(indices), group):
            assert len({pids[i] for i in indices[start:start + group]}) == 1
    # the ranks split the single-process order group by group: nothing seen twice, at most one group left out
    chunks = [tuple(single[i:i + group]) for i in range(0, len(single), group)]
    dealt = [tuple(r[i:i + group]) for r in ranks for i in range(0, len(r), group)]
    assert sorted(dealt) == sorted(chunks[:len(dealt)] if len(chunks) % 2 == 0 else chunks[:-1])
