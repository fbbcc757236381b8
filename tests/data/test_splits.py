"""src/data/splits.py: the seeded identity-disjoint train/val split, its contract, and the query/gallery protocol."""

from __future__ import annotations

import random

import pytest

from src.data.records import DataError
from src.data.splits import query_gallery_split, split_by_identity, split_contract
from tests.data.conftest import identity_records


@pytest.mark.parametrize("seed", [0, 1])
def test_identity_split_is_disjoint_seeded_and_sized(seed):
    data = identity_records({p: 3 for p in range(50)})
    train, val = split_by_identity(data, 0.2, seed)
    assert not {r.pid for r in train} & {r.pid for r in val}
    assert len({r.pid for r in val}) == 10 and len(train) + len(val) == len(data)
    assert split_by_identity(data, 0.2, seed) == (train, val)
    assert split_by_identity(data, 0.2, seed + 10)[1] != val


def test_a_zero_ratio_keeps_everything_for_training():
    data = identity_records({1: 2, 2: 3})
    assert split_by_identity(data, 0.0, seed=0) == (data, [])


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_a_ratio_outside_zero_to_one_is_refused(ratio):
    with pytest.raises(ValueError, match=f"val_ratio must be in \\[0, 1\\), got {ratio}"):
        split_by_identity(identity_records({1: 2, 2: 2}), ratio, seed=0)


@pytest.mark.parametrize("ratio, message", [
    (0.1, r"data.val_ratio=0.1: round\(0.1 x 4 identities\) = 0 leaves no validation identity; use at least 0.25 \(1 of 4\)"),
    (0.9, r"data.val_ratio=0.9: round\(0.9 x 4 identities\) = 4 leaves no training identity; use at most 0.75 \(3 of 4\)"),
])
def test_a_ratio_that_empties_one_side_says_which_ratios_work(ratio, message):
    with pytest.raises(DataError, match=message):
        split_by_identity(identity_records({p: 2 for p in range(4)}), ratio, seed=0)


def test_a_single_identity_cannot_be_split():
    with pytest.raises(DataError, match="the data has 1 identity; a split needs at least 2"):
        split_by_identity(identity_records({5: 4}), 0.5, seed=0)


def test_split_contract_identifies_the_validation_identities_whatever_their_order():
    val = identity_records({3: 2, 9: 1, 4: 2})
    contract = split_contract(val, 0.25, 7)
    assert contract["val_ratio"] == 0.25 and contract["split_seed"] == 7 and contract["num_val_ids"] == 3
    shuffled = val[::-1]
    random.Random(0).shuffle(shuffled)
    assert split_contract(shuffled, 0.25, 7) == contract
    assert split_contract(identity_records({3: 2, 9: 1, 5: 2}), 0.25, 7)["val_ids_sha256"] != contract["val_ids_sha256"]


def test_query_gallery_split_one_query_per_identity_camera():
    data = identity_records({1: 7, 2: 3})
    queries, gallery = query_gallery_split(data, seed=0)
    keys = [(data[i].pid, data[i].camid) for i in queries]
    assert len(keys) == len(set(keys)) == len({(r.pid, r.camid) for r in data})
    assert sorted(queries + gallery) == list(range(len(data)))


def test_query_choice_is_seeded():
    data = identity_records({p: 12 for p in range(1, 6)})  # two images per (identity, camera): a real choice
    assert query_gallery_split(data, seed=3) == query_gallery_split(data, seed=3)
    assert any(query_gallery_split(data, seed=s)[0] != query_gallery_split(data, seed=3)[0] for s in range(4, 8))
