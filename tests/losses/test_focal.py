"""src/losses/focal.py and ``model.attribute_focal_gamma``: focal cross-entropy for the colour heads."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from src.config import check_ranges, compose_config
from src.data.attributes import HEAD_NAMES, HEADS
from src.errors import ConfigError
from src.losses.focal import focal_cross_entropy
from src.models.strong_module import StrongReidModule
from src.train import train
from tests.callbacks.test_pseudo_labels import TINY


def test_gamma_zero_is_the_cross_entropy_with_and_without_class_weights():
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(20, 9, generator=generator), torch.randint(9, (20,), generator=generator)
    weight = torch.linspace(0.2, 3.0, 9)
    torch.testing.assert_close(focal_cross_entropy(logits, targets, 0.0), F.cross_entropy(logits, targets))
    torch.testing.assert_close(focal_cross_entropy(logits, targets, 0.0, weight), F.cross_entropy(logits, targets, weight=weight))


def test_each_image_is_scaled_by_one_minus_its_probability_to_the_gamma():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0]])  # an easy image of class 0, a hard one of class 0
    targets = torch.tensor([0, 0])
    p = logits.softmax(1)[:, 0]
    per_image = -(1 - p) ** 2 * p.log()
    assert focal_cross_entropy(logits, targets, 2.0).item() == pytest.approx(per_image.mean().item(), rel=1e-6)
    weight = torch.tensor([3.0, 1.0, 1.0])
    assert focal_cross_entropy(logits, targets, 2.0, weight).item() == pytest.approx(per_image.mean().item(), rel=1e-6)
    easy_share = (per_image[0] / per_image.sum()).item()
    plain = -p.log()
    assert easy_share < 0.1 * (plain[0] / plain.sum()).item()  # the easy image's share falls more than tenfold


def test_the_gradient_is_right():
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3, 1])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: focal_cross_entropy(x, targets, 2.0, weight), (logits,))


def test_the_attribute_loss_takes_the_focal_loss_for_the_listed_heads_only():
    generator = torch.Generator().manual_seed(1)
    logits = {h.name: torch.randn(6, h.num_classes, generator=generator) for h in HEADS}
    labels = torch.stack([torch.arange(6) % h.num_classes for h in HEADS], dim=1)
    gammas = {"upcolor": 2.0, "downcolor": 2.0}
    expected = sum((focal_cross_entropy if n in gammas else lambda x, y, _: F.cross_entropy(x, y))(
        logits[n], labels[:, i], gammas.get(n, 0.0)).item() for i, n in enumerate(HEAD_NAMES)) / 12
    assert StrongReidModule.attribute_loss(logits, labels, None, gammas).item() == pytest.approx(expected, rel=1e-6)
    assert expected < StrongReidModule.attribute_loss(logits, labels).item()


def test_training_with_focal_colour_heads_lowers_the_attribute_loss(tmp_path, cache_dir):
    losses = {}
    for gamma in (0.0, 2.0):
        run = tmp_path / f"gamma_{gamma}"
        train(compose_config("train", [*TINY, "data.unlabelled=[]", "trainer.max_epochs=1",
                                       f"model.attribute_focal_gamma={gamma}"], run, cache_dir))
        history = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss_attributes"])
        losses[gamma] = history["train/loss_attributes"].iloc[-1]
        hparams = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["hyper_parameters"]
        assert hparams["attribute_focal_gamma"] == gamma
    assert losses[2.0] < losses[0.0]


def test_a_negative_gamma_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"model.attribute_focal_gamma=-1: expected a number >= 0"):
        check_ranges(compose_config("train", ["task=reid_strong", "model.attribute_focal_gamma=-1"], tmp_path))
