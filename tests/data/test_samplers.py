"""src/data/samplers.py: the P x K identity sampler."""

from __future__ import annotations

from collections import Counter

from src.data.samplers import IdentitySampler
from tests.data.conftest import identity_records


def test_every_group_of_k_is_one_identity_and_small_identities_are_resampled():
    pids = [r.pid for r in identity_records({1: 9, 2: 2, 3: 4, 4: 1})]
    sampler = IdentitySampler(pids, num_instances=4, seed=0)
    indices = list(sampler)
    assert len(indices) == len(sampler) and len(indices) % 4 == 0
    for start in range(0, len(indices), 4):
        assert len({pids[i] for i in indices[start:start + 4]}) == 1
    assert {pids[i] for i in indices} == {1, 2, 3, 4}
    assert Counter(pids[i] for i in indices)[1] == 8  # 9 images -> two groups of 4


def test_sampler_is_seeded_per_epoch():
    pids = [r.pid for r in identity_records({p: 6 for p in range(8)})]
    a, b = IdentitySampler(pids, 4, seed=3), IdentitySampler(pids, 4, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
