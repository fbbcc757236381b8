"""src/models/gather.py: per-sample validation outputs gathered across ranks, one row per dataset index."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from src.losses.triplet import BatchHardTripletLoss
from src.models.gather import gather_batch, gather_unique

INPUTS = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
PIDS = torch.arange(4).repeat_interleave(4)  # P=4 identities x K=4; each rank holds 2 whole identity groups


def layer() -> torch.nn.Linear:
    torch.manual_seed(1)
    return torch.nn.Linear(6, 5)


def triplet_gradient_under_ddp(rank: int, world_size: int, init_file: str, across_ranks: bool, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        net = layer()
        share = slice(rank * 8, rank * 8 + 8)
        model = DistributedDataParallel(net)  # kept alive: its reducer averages the gradients in backward
        features, pids = model(INPUTS[share]), PIDS[share]
        if across_ranks:
            features, pids = gather_batch(features, pids)
        BatchHardTripletLoss(0.3)(features, pids).backward()
        if rank == 0:
            torch.save(net.weight.grad, out)
    finally:
        dist.destroy_process_group()


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


def test_one_process_gathers_nothing():
    features, pids = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    gathered = gather_batch(features, pids)
    assert gathered[0] is features and gathered[1] is pids


@pytest.mark.parametrize("across_ranks", [True, False])
def test_a_triplet_over_the_gathered_batch_has_the_gradient_of_one_process(tmp_path, across_ranks):
    net = layer()
    BatchHardTripletLoss(0.3)(net(INPUTS), PIDS).backward()
    out = tmp_path / "grad.pt"
    mp.spawn(triplet_gradient_under_ddp, args=(2, str(tmp_path / "init"), across_ranks, str(out)), nprocs=2)
    two_processes = torch.load(out)
    # gathered: DDP's averaged gradient is the one-process gradient; each rank mining its own share is not
    assert torch.allclose(two_processes, net.weight.grad, atol=1e-6) is across_ranks
