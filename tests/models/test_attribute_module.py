"""src/models/attribute_module.py: the report's stage-1 LightningModule (summed cross-entropy over the 12 heads)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS
from src.models.attribute_module import AttributeModule, attribute_accuracies, plain
from tests.models.conftest import BACKBONE, OPTIMIZER, fit_steps, tiny_batch

pytestmark = pytest.mark.usefixtures("no_logging")
TINY_BACKBONE = {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False}
NET = {"_target_": "src.models.heads.MarketClassifier", "backbone": TINY_BACKBONE}


def test_attribute_module_step_learns_a_batch():
    torch.manual_seed(0)
    module = AttributeModule({"_target_": "src.models.heads.MarketClassifier", "backbone": BACKBONE}, OPTIMIZER)
    losses = fit_steps(module, tiny_batch())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.7 * losses[0], losses


def test_the_loss_is_the_sum_of_the_heads_cross_entropies():
    logits = {h.name: torch.randn(5, h.num_classes, generator=torch.Generator().manual_seed(i)) for i, h in enumerate(HEADS)}
    labels = torch.stack([torch.arange(5) % h.num_classes for h in HEADS], dim=1)
    expected = sum(nn.functional.cross_entropy(logits[name], labels[:, i]).item() for i, name in enumerate(HEAD_NAMES))
    module = AttributeModule(NET, OPTIMIZER)
    assert module.attribute_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_an_identity_loss_is_added_when_weighted():
    torch.manual_seed(0)
    plain_module = AttributeModule(NET, OPTIMIZER)
    torch.manual_seed(0)
    with_ids = AttributeModule(NET, OPTIMIZER, id_loss_weight=0.5, num_identities=2)
    with_ids.pid_to_label = {1: 0, 2: 1}
    batch = tiny_batch()
    plain_module.eval(), with_ids.eval()  # no dropout: the two networks compute the same attribute loss
    base = plain_module.training_step(batch, 0)
    features = with_ids.net.features(with_ids._layout(batch["image"]))
    targets = (batch["pid"] - 1).long()
    extra = 0.5 * nn.functional.cross_entropy(with_ids.id_classifier(features), targets)
    assert with_ids.training_step(batch, 0).item() == pytest.approx((base + extra).item(), rel=1e-5)


def test_channels_last_is_a_memory_layout_only():
    torch.manual_seed(0)
    module = AttributeModule(NET, OPTIMIZER).eval()
    images = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        channels_last = module(images)
        module.hparams.channels_last = False
        contiguous = module(images)
    for name in HEAD_NAMES:
        torch.testing.assert_close(channels_last[name], contiguous[name], atol=1e-5, rtol=1e-5)


def test_plain_turns_omegaconf_into_plain_containers_and_leaves_the_rest():
    config = OmegaConf.create({"a": 1, "b": {"c": "${a}"}})
    assert plain(config) == {"a": 1, "b": {"c": 1}} and type(plain(config)) is dict
    assert plain({"x": 1}) == {"x": 1} and plain(None) is None


def test_one_micro_accuracy_per_head_named_by_the_prefix():
    metrics = attribute_accuracies("val/acc/")
    assert sorted(metrics.keys()) == sorted(f"val/acc/{name}" for name in HEAD_NAMES)
    metrics["age"].update(torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]]), torch.tensor([0, 1, 3]))
    assert metrics["age"].compute().item() == pytest.approx(2 / 3)
