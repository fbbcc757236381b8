"""Each LightningModule's training step on a tiny batch, without a Trainer: a finite loss that a few optimizer
steps lower, and the checkpoint contract of the shared base."""

from __future__ import annotations

import pytest
import torch

from src.data.attributes import HEADS
from src.models.attribute_module import AttributeModule
from src.models.strong_module import StrongReidModule

BACKBONE = {"_target_": "src.models.backbones.timm_backbone", "model_name": "resnet18", "pretrained": False}
OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05, "momentum": 0.9}
SCHEDULER = {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 10}


def tiny_batch(size: int = 8, identities: int = 2):
    generator = torch.Generator().manual_seed(0)
    labels = torch.stack([torch.randint(h.num_classes, (size,), generator=generator) for h in HEADS], dim=1)
    return {"image": torch.rand(size, 3, 64, 32, generator=generator), "labels": labels,
            "pid": torch.arange(size) % identities + 1, "camid": torch.ones(size, dtype=torch.long),
            "index": torch.arange(size)}


def fit_steps(module, batch, steps: int = 8) -> list[float]:
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(autouse=True)
def no_logging(monkeypatch):  # self.log needs a Trainer; the step's arithmetic does not
    for cls in (AttributeModule, StrongReidModule):
        monkeypatch.setattr(cls, "log", lambda *args, **kwargs: None)
        monkeypatch.setattr(cls, "log_dict", lambda *args, **kwargs: None)


def test_attribute_module_step_learns_a_batch():
    torch.manual_seed(0)
    module = AttributeModule({"_target_": "src.models.heads.MarketClassifier", "backbone": BACKBONE}, OPTIMIZER)
    losses = fit_steps(module, tiny_batch())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.7 * losses[0], losses


def test_strong_module_step_learns_identities_and_attributes():
    torch.manual_seed(0)
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    module = StrongReidModule(net, OPTIMIZER, SCHEDULER)
    module.pid_to_label = {1: 0, 2: 1}
    losses = fit_steps(module, tiny_batch())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.7 * losses[0], losses


def test_shared_base_wires_the_scheduler_and_writes_the_network_contract():
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    module = StrongReidModule(net, OPTIMIZER, SCHEDULER)
    configured = module.configure_optimizers()
    assert configured["lr_scheduler"]["interval"] == "epoch"
    assert {id(p) for g in configured["optimizer"].param_groups for p in g["params"]} == \
        {id(p) for p in module.parameters() if p.requires_grad}
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["network"]["kind"] == "reid" and checkpoint["network"]["backbone"] == "resnet18"
    assert checkpoint["network"]["metric"] == "cosine" and len(checkpoint["network"]["mean"]) == 3


@pytest.mark.parametrize("choice, key", [("pre_bn", "feature"), ("bnneck", "normed")])
def test_triplet_loss_sees_the_chosen_feature(choice, key, monkeypatch):
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    module = StrongReidModule(net, OPTIMIZER, SCHEDULER, triplet_feature=choice)
    module.pid_to_label = {1: 0, 2: 1}
    seen = []
    monkeypatch.setattr(module.triplet, "forward", lambda features, targets: seen.append(features) or features.sum() * 0)
    module.eval()  # the BN neck in eval mode, with running statistics that make the two features differ
    module.net.bnneck.running_mean.fill_(0.5)
    out = module.net.forward_train(tiny_batch()["image"])
    module.training_step(tiny_batch(), 0)
    assert len(seen) == 1 and torch.allclose(seen[0], out[key], atol=1e-5)
    assert not torch.allclose(out["feature"], out["normed"], atol=1e-3)


def test_unknown_triplet_feature_is_refused():
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    with pytest.raises(ValueError, match="model.triplet_feature='logits'.*pre_bn, bnneck"):
        StrongReidModule(net, OPTIMIZER, SCHEDULER, triplet_feature="logits")


def strong_module_set_up(checkpoint: dict, num_classes: int, init_weights) -> StrongReidModule:
    """A StrongReidModule built from a checkpoint's own net config and set up for ``num_classes`` identities."""
    from types import SimpleNamespace

    net = {**checkpoint["hyper_parameters"]["net"], "num_identities": None}
    module = StrongReidModule(net, OPTIMIZER, SCHEDULER, init_weights=init_weights and str(init_weights))
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(pid_to_label={}, pseudo=None, num_classes=num_classes))
    module.setup("fit")
    return module


def test_init_weights_starts_from_a_checkpoint_and_keeps_what_does_not_fit_fresh(tiny_strong_ckpt):
    from src.models.loading import read_checkpoint

    checkpoint = read_checkpoint(tiny_strong_ckpt)
    saved = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    classes = checkpoint["hyper_parameters"]["net"]["num_identities"]
    same = strong_module_set_up(checkpoint, classes, tiny_strong_ckpt).net.state_dict()
    assert all(torch.equal(same[k], saved[k]) for k in saved) and set(same) == set(saved)
    fresh = strong_module_set_up(checkpoint, classes, None).net.state_dict()
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)  # without the option the network starts elsewhere
    with pytest.warns(UserWarning, match=r"model.init_weights=.*tensors do not fit and start fresh \(id_classifier"):
        other = strong_module_set_up(checkpoint, classes + 3, tiny_strong_ckpt).net.state_dict()
    assert other["id_classifier.weight"].shape[0] == classes + 3
    assert all(torch.equal(other[k], saved[k]) for k in saved if not k.startswith("id_classifier"))


def test_init_weights_refuses_an_attributes_checkpoint(tiny_strong_ckpt, tmp_path):
    from src.models.loading import CheckpointError, read_checkpoint

    checkpoint = read_checkpoint(tiny_strong_ckpt)
    checkpoint["network"] = {**checkpoint["network"], "kind": "attributes"}
    torch.save(checkpoint, tmp_path / "attributes.ckpt")
    with pytest.raises(CheckpointError, match=r"attributes.ckpt: holds an attributes checkpoint, model.init_weights"):
        strong_module_set_up(checkpoint, 4, tmp_path / "attributes.ckpt")
