"""src/losses/class_balanced.py and ``model.attribute_class_balance``: class weights from the effective number of
samples, used by the strong model's attribute loss for the chosen heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS
from src.losses.class_balanced import class_balanced_weights
from src.models.strong_module import StrongReidModule
from tests.conftest import COURSE, ROOT, needs_shared


def test_weights_go_from_equal_to_inverse_frequency_and_keep_the_mean_weight_at_one():
    labels = torch.tensor([0] * 90 + [1] * 10 + [-1] * 5)  # -1: no label, not counted
    near_zero = class_balanced_weights(labels, 3, 1e-6)
    assert torch.allclose(near_zero, torch.ones(3), atol=1e-4)
    near_one = class_balanced_weights(labels, 3, 0.999999).tolist()
    assert near_one[1] / near_one[0] == pytest.approx(9.0, rel=1e-3)  # 90 against 10 images
    assert near_one[2] == pytest.approx(near_one[1] * 10, rel=1e-3)  # no image: the weight of a class with one
    for weights in (near_zero.tolist(), near_one, class_balanced_weights(labels, 3, 0.99).tolist()):
        assert (weights[0] * 90 + weights[1] * 10) / 100 == pytest.approx(1.0, rel=1e-5)
    middle = class_balanced_weights(labels, 3, 0.99).tolist()  # effective numbers (1 - 0.99^n) / 0.01
    expected = (1 - 0.99 ** 10) / (1 - 0.99 ** 90)
    assert middle[1] / middle[0] == pytest.approx(1 / expected, rel=1e-5)


def test_the_attribute_loss_weighs_the_classes_of_the_balanced_heads_only():
    generator = torch.Generator().manual_seed(0)
    logits = {h.name: torch.randn(6, h.num_classes, generator=generator) for h in HEADS}
    labels = torch.stack([torch.arange(6) % h.num_classes for h in HEADS], dim=1)
    weights = {"upcolor": torch.linspace(0.5, 2.0, 9)}
    expected = sum(nn.functional.cross_entropy(logits[n], labels[:, i], weight=weights.get(n)).item()
                   for i, n in enumerate(HEAD_NAMES)) / 12
    assert StrongReidModule.attribute_loss(logits, labels, weights).item() == pytest.approx(expected, rel=1e-6)
    assert StrongReidModule.attribute_loss(logits, labels, weights).item() != pytest.approx(
        StrongReidModule.attribute_loss(logits, labels).item(), rel=1e-3)


def test_an_unknown_head_or_a_balance_out_of_range_is_refused(tmp_path):
    from src.config import check_ranges, compose_config
    from src.errors import ConfigError

    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": {}, "num_identities": 2}
    with pytest.raises(ValueError, match="model.balanced_heads: colour is not an attribute head"):
        StrongReidModule(net, {}, balanced_heads=["upcolor", "colour"])
    cfg = compose_config("train", ["task=reid_strong", "model.attribute_class_balance=1.0"], tmp_path)
    with pytest.raises(ConfigError, match=r"model.attribute_class_balance=1.0: expected a number in \[0, 1\)"):
        check_ranges(cfg)


def set_up(records, beta):
    from types import SimpleNamespace

    net = {"_target_": "src.models.strong.StrongReidNet", "num_identities": 2,
           "backbone": {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False}}
    module = StrongReidModule(net, {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
                              attribute_class_balance=beta)
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(pid_to_label={}, pseudo=None, num_classes=2,
                                                                 train_records=records))
    module.setup("fit")
    return module


@needs_shared
def test_setup_weighs_the_colour_heads_by_the_course_training_split():
    """On the course labels: the rarest upper colour weighs more than black, whose weight falls under 1."""
    from hydra.utils import instantiate

    from src.config import compose_config

    datamodule = instantiate(compose_config("train", ["task=reid_strong", "data=market_course", f"data.root={COURSE}"],
                                            ROOT / "outputs" / "unused").data, preload=False)
    datamodule.split()
    module = set_up(datamodule.train_records, 0.999)
    assert set(module.class_weights) == {"upcolor", "downcolor"}
    labels = torch.tensor([r.labels for r in datamodule.train_records])[:, HEAD_NAMES.index("upcolor")]
    counts = torch.bincount(labels, minlength=9)
    weights = module.class_weights["upcolor"]
    assert weights[counts.argmin()] > 1 > weights[counts.argmax()]
    assert torch.equal(weights, class_balanced_weights(labels, 9, 0.999))
    assert set_up(datamodule.train_records, 0.0).class_weights == {}
