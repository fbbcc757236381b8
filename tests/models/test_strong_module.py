"""src/models/strong_module.py: the strong model's training step (ID + triplet + attribute losses), its options,
and ``model.init_weights`` (starting from another re-ID checkpoint)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS
from src.models.strong_module import StrongReidModule
from tests.models.conftest import BACKBONE, OPTIMIZER, SCHEDULER, fit_steps, tiny_batch

pytestmark = pytest.mark.usefixtures("no_logging")
TINY_BACKBONE = {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False}
NET = {"_target_": "src.models.strong.StrongReidNet", "backbone": TINY_BACKBONE, "num_identities": 2}


def test_strong_module_step_learns_identities_and_attributes():
    torch.manual_seed(0)
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    module = StrongReidModule(net, OPTIMIZER, SCHEDULER)
    module.pid_to_label = {1: 0, 2: 1}
    losses = fit_steps(module, tiny_batch())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.7 * losses[0], losses


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


def test_the_attribute_loss_averages_the_heads_over_the_labelled_images_only():
    generator = torch.Generator().manual_seed(0)
    logits = {h.name: torch.randn(4, h.num_classes, generator=generator) for h in HEADS}
    labels = torch.stack([torch.arange(4) % h.num_classes for h in HEADS], dim=1)
    labels[1] = -1  # a pseudo-labelled image: no attribute labels
    rows = [0, 2, 3]
    expected = sum(nn.functional.cross_entropy(logits[n][rows], labels[rows, i]).item() for i, n in enumerate(HEAD_NAMES)) / 12
    assert StrongReidModule.attribute_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    none = StrongReidModule.attribute_loss(logits, torch.full_like(labels, -1))
    assert none.item() == 0.0 and none.dtype == torch.float32


def test_a_failed_compilation_falls_back_to_eager_with_one_warning(monkeypatch):
    torch.manual_seed(0)
    module = StrongReidModule(NET, OPTIMIZER, compile=True).eval()

    def broken(function):
        def fails(*args):
            raise RuntimeError("no C++ compiler\nmore detail")
        return fails

    monkeypatch.setattr(torch, "compile", broken)
    images = tiny_batch()["image"]
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(RuntimeError: no C\+\+ compiler\); training continues in eager"):
        out = module.forward_train(images)
    assert module.compile is False
    torch.testing.assert_close(out["id_logits"], module.net.forward_train(images)["id_logits"])


def strong_module_set_up(checkpoint: dict, num_classes: int, init_weights) -> StrongReidModule:
    """A StrongReidModule built from a checkpoint's own net config and set up for ``num_classes`` identities."""
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
