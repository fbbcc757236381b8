"""src/models/gather.py: per-sample validation outputs gathered across ranks, one row per dataset index."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from src.models.gather import gather_unique


def test_a_single_process_gets_its_rows_sorted_by_index_without_duplicates():
    parts = {"index": torch.tensor([3, 1, 2, 1]), "value": torch.tensor([30.0, 10.0, 20.0, 10.0])}
    module = SimpleNamespace(trainer=SimpleNamespace(world_size=1))
    out = gather_unique(module, parts)
    assert out["index"].tolist() == [1, 2, 3] and out["value"].tolist() == [10.0, 20.0, 30.0]
    assert gather_unique(SimpleNamespace(trainer=None), parts)["index"].tolist() == [1, 2, 3]


def test_ranks_padded_by_the_sampler_count_every_sample_once():
    # DistributedSampler over 5 samples and 2 ranks: rank 0 gets 0, 2, 4 and rank 1 gets 1, 3 plus 0 again as padding
    ranks = [{"index": torch.tensor([0, 2, 4]), "embedding": torch.tensor([[0.0, 0], [2, 2], [4, 4]])},
             {"index": torch.tensor([1, 3, 0]), "embedding": torch.tensor([[1.0, 1], [3, 3], [0, 0]])}]
    keys = iter(["index", "embedding"])

    def all_gather(value):  # what Lightning's all_gather returns on each rank: (world size, *shape)
        key = next(keys)
        return torch.stack([rank[key] for rank in ranks])

    module = SimpleNamespace(trainer=SimpleNamespace(world_size=2), all_gather=all_gather)
    out = gather_unique(module, ranks[0])
    assert out["index"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(out["embedding"], torch.arange(5.0).unsqueeze(1).expand(5, 2))
