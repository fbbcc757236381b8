"""Batch-hard triplet loss against a per-anchor loop oracle."""

from __future__ import annotations

import pytest
import torch

from src.losses.triplet import BatchHardTripletLoss


def loop_oracle(features, pids, margin):
    losses = []
    for i in range(len(pids)):
        d = (features - features[i]).norm(dim=1)
        pos = [d[j] for j in range(len(pids)) if j != i and pids[j] == pids[i]]
        neg = [d[j] for j in range(len(pids)) if pids[j] != pids[i]]
        if not pos or not neg:
            continue
        gap = max(pos) - min(neg)
        losses.append(torch.nn.functional.softplus(gap) if margin is None else torch.relu(gap + margin))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("margin", [0.3, None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_oracle(margin, seed):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(24, 16, generator=generator)
    pids = torch.randint(0, 5, (24,), generator=generator)
    expected = loop_oracle(features, pids, margin)
    torch.testing.assert_close(BatchHardTripletLoss(margin)(features, pids), expected, rtol=1e-5, atol=1e-6)


def test_well_separated_identities_give_zero_loss_and_gradients_flow():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pids = torch.tensor([0, 0, 1, 1, 2, 2])
    features = (centres[pids] + 0.01 * torch.randn(6, 2)).requires_grad_()
    assert BatchHardTripletLoss(0.3)(features, pids).item() == 0.0
    mixed = torch.randn(6, 2, requires_grad=True)
    loss = BatchHardTripletLoss(5.0)(mixed, pids)
    loss.backward()
    assert loss.item() > 0 and mixed.grad.abs().sum() > 0


def test_batch_without_positives_gives_zero():
    features = torch.randn(4, 8, requires_grad=True)
    assert BatchHardTripletLoss()(features, torch.arange(4)).item() == 0.0
