"""The strong module with pseudo identities: attribute loss only where labels exist, soft targets, classifier rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.pseudo import PSEUDO_PID_BASE, PseudoLabels
from src.data.records import ImageRecord
from src.models.strong_module import StrongReidModule
from tests.models.conftest import BACKBONE, tiny_batch


@pytest.fixture(autouse=True)
def no_logging(monkeypatch):
    monkeypatch.setattr(StrongReidModule, "log", lambda *args, **kwargs: None)
    logged = {}
    monkeypatch.setattr(StrongReidModule, "log_dict", lambda self, values, **kwargs: logged.update(values))
    return logged


def strong_module(rows: int) -> StrongReidModule:
    torch.manual_seed(0)
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": rows}
    return StrongReidModule(net, {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}, pseudo_attribute_weight=0.5)


def test_the_attribute_loss_uses_only_labelled_images():
    logits = {h.name: torch.randn(6, h.num_classes) for h in HEADS}
    labels = tiny_batch(6)["labels"]
    unlabelled = labels.clone()
    unlabelled[3:] = -1
    only_first = {name: value[:3] for name, value in logits.items()}
    expected = StrongReidModule.attribute_loss(only_first, labels[:3])
    assert torch.allclose(StrongReidModule.attribute_loss(logits, unlabelled), expected)
    assert StrongReidModule.attribute_loss(logits, torch.full_like(labels, -1)).item() == 0


def test_a_batch_of_labelled_and_pseudo_identities_trains_with_soft_attribute_targets(no_logging):
    module = strong_module(rows=2 + 5)  # 2 labelled identities + room for 5 pseudo ones
    pseudo = PseudoLabels([ImageRecord(Path(f"/u/{i}.jpg"), -1, -1) for i in range(4)], None, capacity=5, first_label=2)
    targets = {h.name: torch.full((2, h.num_classes), 1 / h.num_classes) for h in HEADS}
    pseudo.assign([0, 0, 1, 1], targets)
    module.pseudo = pseudo
    module.pid_to_label = {1: 0, 2: 1, **pseudo.pid_to_label()}
    batch = tiny_batch(8)
    batch["pid"] = torch.tensor([1, 1, 2, 2, PSEUDO_PID_BASE, PSEUDO_PID_BASE, PSEUDO_PID_BASE + 1, PSEUDO_PID_BASE + 1])
    batch["labels"][4:] = -1
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and no_logging["train/loss_pseudo_attributes"] > 0
    # uniform soft targets: the loss is the mean cross-entropy to uniform, >= log(classes) averaged over heads
    floor = 0.5 * sum(torch.log(torch.tensor(float(h.num_classes))) for h in HEADS) / len(HEAD_NAMES)
    assert no_logging["train/loss_pseudo_attributes"] >= floor - 1e-4
    unused = module.net.id_classifier.weight.grad[4:]  # rows past the 2 current pseudo identities
    assert torch.count_nonzero(unused) == 0


def test_a_round_restarts_the_pseudo_rows_at_the_centroids_and_their_adam_moments():
    module = strong_module(rows=2 + 4)
    module.pid_to_label = {1: 0, 2: 1, PSEUDO_PID_BASE: 2, PSEUDO_PID_BASE + 1: 3}
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    batch = tiny_batch(8)
    batch["pid"] = torch.tensor([1, 1, 2, 2, PSEUDO_PID_BASE] * 1 + [PSEUDO_PID_BASE, PSEUDO_PID_BASE + 1, PSEUDO_PID_BASE + 1])
    for _ in range(2):
        optimizer.zero_grad()
        module.training_step(batch, 0).backward()
        optimizer.step()
    weight = module.net.id_classifier.weight
    labelled_rows = weight[:2].detach().clone()
    moments = optimizer.state[weight]
    assert torch.count_nonzero(moments["exp_avg"][2:4]) > 0
    module.pid_to_label = {1: 0, 2: 1, PSEUDO_PID_BASE: 2}  # the new round found one cluster
    centroid = torch.randn(1, weight.shape[1])
    module.start_pseudo_identities(centroid, [optimizer])
    assert torch.equal(weight[:2], labelled_rows)
    expected = torch.nn.functional.normalize(centroid, dim=1) * labelled_rows.norm(dim=1).mean()
    assert torch.allclose(weight[2:3], expected) and torch.count_nonzero(weight[3:]) == 0
    assert torch.count_nonzero(moments["exp_avg"][2:]) == 0 and torch.count_nonzero(moments["exp_avg_sq"][2:]) == 0
    assert torch.count_nonzero(moments["exp_avg"][:2]) > 0
