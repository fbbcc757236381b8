"""P x K identity sampler and the identity split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from src.data.datasets import EpochKeyedSampler
from src.data.records import ImageRecord
from src.data.samplers import IdentitySampler
from src.data.splits import query_gallery_split, split_by_identity


def records(counts: dict[int, int]) -> list[ImageRecord]:
    return [ImageRecord(Path(f"{pid:04d}_c{k % 6 + 1}_{k}.jpg"), pid, k % 6 + 1, (0,) * 12)
            for pid, n in counts.items() for k in range(n)]


def test_every_group_of_k_is_one_identity_and_small_identities_are_resampled():
    pids = [r.pid for r in records({1: 9, 2: 2, 3: 4, 4: 1})]
    sampler = IdentitySampler(pids, num_instances=4, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) and len(indices) % 4 == 0
    for start in range(0, len(indices), 4):
        assert len({pids[i] for i in indices[start:start + 4]}) == 1
    assert {pids[i] for i in indices} == {1, 2, 3, 4}
    assert Counter(pids[i] for i in indices)[1] == 8  # 9 images -> two groups of 4


def test_sampler_is_seeded_per_epoch():
    pids = [r.pid for r in records({p: 6 for p in range(8)})]
    a, b = IdentitySampler(pids, 4, seed=3), IdentitySampler(pids, 4, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


@pytest.mark.parametrize("pk", [True, False])
def test_ddp_ranks_get_whole_identity_groups_disjoint_and_equal_in_number(pk):
    pids = [r.pid for r in records({p: 5 + p % 4 for p in range(13)})]
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


@pytest.mark.parametrize("seed", [0, 1])
def test_identity_split_is_disjoint_seeded_and_sized(seed):
    data = records({p: 3 for p in range(50)})
    train, val = split_by_identity(data, 0.2, seed)
    assert not {r.pid for r in train} & {r.pid for r in val}
    assert len({r.pid for r in val}) == 10 and len(train) + len(val) == len(data)
    assert split_by_identity(data, 0.2, seed) == (train, val)
    assert split_by_identity(data, 0.2, seed + 10)[1] != val


def test_query_gallery_split_one_query_per_identity_camera():
    data = records({1: 7, 2: 3})
    queries, gallery = query_gallery_split(data, seed=0)
    keys = [(data[i].pid, data[i].camid) for i in queries]
    assert len(keys) == len(set(keys)) == len({(r.pid, r.camid) for r in data})
    assert sorted(queries + gallery) == list(range(len(data)))
