"""src/losses/center.py: the center loss, half the mean squared distance of each feature to its identity's centre."""

from __future__ import annotations

import pytest
import torch

from src.losses.center import CenterLoss


def test_center_loss_is_zero_at_the_centres():
    loss = CenterLoss(3, 4)
    labels = torch.tensor([0, 2, 2])
    assert loss(loss.centers[labels].detach(), labels).item() == pytest.approx(0.0)
    assert loss(loss.centers[labels].detach() + 1.0, labels).item() == pytest.approx(2.0)


def test_center_loss_is_half_the_mean_squared_distance_and_pulls_both_ways():
    torch.manual_seed(0)
    loss = CenterLoss(2, 3)
    features = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([1, 0, 1, 1])
    value = loss(features, labels)
    centres = loss.centers.detach().numpy()
    expected = sum(((features[i].detach().numpy() - centres[labels[i]]) ** 2).sum() for i in range(4)) / 4 / 2
    assert value.item() == pytest.approx(float(expected), rel=1e-5)
    value.backward()
    # d/dx of |x - c|^2 / (2 N) = (x - c) / N: each feature is pulled towards its centre, the centre towards its features
    torch.testing.assert_close(features.grad, (features - loss.centers[labels]).detach() / 4)
    torch.testing.assert_close(loss.centers.grad[0], -features.grad[1])
