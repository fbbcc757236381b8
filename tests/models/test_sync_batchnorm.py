"""src/models/sync_batchnorm.py: under DDP on gloo, batch norm over the global batch equals one process."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from timm.layers import BatchNormAct2d
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from src.models.sync_batchnorm import GlobalBatchNorm

IMAGES = torch.randn(8, 3, 5, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1


def network() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), BatchNormAct2d(4, act_layer=nn.ReLU),
                        nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(80, 6), nn.BatchNorm1d(6))
    with torch.no_grad():  # affine weights away from 1 and 0, so a wrong scale or shift shows
        for bn in net.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
    return net


def loss_of(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return (net(images) ** 2).mean() * images.shape[0] / IMAGES.shape[0]  # a sum over ranks = the full batch's


def step_under_ddp(rank: int, world_size: int, init_file: str, synchronised: bool, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        net = network()
        if synchronised:
            GlobalBatchNorm().apply(net)
        model = DistributedDataParallel(net)
        share = slice(rank * 4, rank * 4 + 4)
        loss_of(model, IMAGES[share]).backward()
        if rank == 0:
            GlobalBatchNorm().revert(net)
            grads = {name: p.grad * world_size for name, p in net.named_parameters()}  # DDP averages; one process sums
            torch.save({"grads": grads, "state": net.state_dict()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("synchronised", [True, False])
def test_two_processes_with_global_batch_norm_step_as_one_process(tmp_path, synchronised):
    net = network()
    loss_of(net, IMAGES).backward()
    out = tmp_path / "step.pt"
    mp.spawn(step_under_ddp, args=(2, str(tmp_path / "init"), synchronised, str(out)), nprocs=2)
    ddp = torch.load(out)
    same_grads = all(torch.allclose(ddp["grads"][name], p.grad, rtol=1e-4, atol=1e-5)
                     for name, p in net.named_parameters())
    same_statistics = all(torch.allclose(ddp["state"][name], value, rtol=1e-4, atol=1e-5)
                          for name, value in net.state_dict().items())
    # per-process statistics (the plain DDP step) differ from the one-process step; the global ones do not
    assert same_grads is synchronised and same_statistics is synchronised


def test_outside_ddp_and_in_eval_the_modules_behave_as_before():
    net, reference = network(), network()
    GlobalBatchNorm().apply(net)
    assert torch.equal(net(IMAGES), reference(IMAGES))  # no process group: the module's own forward
    net.eval(), reference.eval()
    assert torch.equal(net(IMAGES), reference(IMAGES))
    GlobalBatchNorm().revert(net)
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert net.state_dict().keys() == reference.state_dict().keys()
