"""model.net.backbone.frozen_stages: the stem and the first N stages take no gradient and keep their BatchNorm
statistics through training (also across a Lightning fit with validation in between); 0 changes nothing."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn

from src.errors import ConfigError
from src.models.backbones import efficientnet_lite, timm_backbone, torchvision_resnet


def batchnorms(module: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def running_stats(module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.clone() for name, bn in batchnorms(module).items()
            for key, value in (("mean", bn.running_mean), ("var", bn.running_var))}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return f"{name}.".startswith(prefixes)


def train_step(backbone: nn.Module, steps: int = 1) -> None:
    head = nn.Linear(backbone.num_features, 3)
    params = [p for p in [*backbone.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2, weight_decay=5e-4)
    backbone.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(backbone(torch.rand(8, 3, 64, 32))), torch.arange(8) % 3)
        loss.backward()
        optimizer.step()


def test_stages_of_each_backbone_kind():
    lite = efficientnet_lite("lite0", pretrained=False, frozen_stages=2)
    assert lite.frozen_modules == ("conv_stem", "bn1", "blocks.0", "blocks.1")
    assert torchvision_resnet(18, pretrained=False, frozen_stages=1).frozen_modules == ("0", "1", "4")
    assert timm_backbone("resnet18", frozen_stages=4).frozen_modules == \
        ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4")


@pytest.mark.parametrize("build, stages", [
    (lambda n: efficientnet_lite("lite0", pretrained=False, frozen_stages=n), 7),
    (lambda n: torchvision_resnet(18, pretrained=False, frozen_stages=n), 4),
    (lambda n: timm_backbone("resnet18", frozen_stages=n), 4),
])
def test_more_stages_than_the_network_has_is_a_clear_error(build, stages):
    build(stages)  # all of them is allowed
    with pytest.raises(ConfigError, match=rf"frozen_stages={stages + 1}: .* has {stages} stages after its stem"):
        build(stages + 1)
    with pytest.raises(ConfigError, match="frozen_stages=-1"):
        build(-1)


def test_frozen_stages_take_no_gradient_and_keep_their_batchnorm_statistics():
    torch.manual_seed(0)
    backbone = efficientnet_lite("lite0", pretrained=False, frozen_stages=2)
    frozen = tuple(f"body.{name}." for name in backbone.frozen_modules)
    before_params = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    before_stats = running_stats(backbone)
    reached = {}
    backbone.body.blocks[2].register_forward_pre_hook(lambda m, args: reached.update(grad=args[0].requires_grad))

    train_step(backbone, steps=2)

    assert reached == {"grad": False}  # the first trainable stage gets an input with no autograd history
    for name, param in backbone.named_parameters():
        is_frozen = under(name, frozen)
        assert param.requires_grad is not is_frozen, name
        assert (param.grad is None) is is_frozen, name
        assert torch.equal(param, before_params[name]) is is_frozen, name
    after_stats = running_stats(backbone)
    for name, value in before_stats.items():
        assert torch.equal(after_stats[name], value) is under(name, frozen), name
    for name, bn in batchnorms(backbone).items():
        assert bn.training is not under(name, frozen), name
    backbone.eval().train()  # any later train() keeps them in eval mode
    assert not backbone.body.bn1.training and backbone.body.blocks[2][0].bn1.training


def test_zero_frozen_stages_changes_nothing():
    torch.manual_seed(0)
    default = efficientnet_lite("lite0", pretrained=False)
    torch.manual_seed(0)
    zero = efficientnet_lite("lite0", pretrained=False, frozen_stages=0)
    assert zero.frozen_modules == ()
    assert all(p.requires_grad for p in zero.parameters()) and all(m.training for m in zero.modules())
    assert default.state_dict().keys() == zero.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), zero.state_dict().values()))
    before = running_stats(zero)
    train_step(zero)
    assert all(not torch.equal(before[name], value) for name, value in running_stats(zero).items())


class _TinyModule(pl.LightningModule):
    """A frozen-stage backbone under a real Trainer, which switches train/eval around validation."""

    def __init__(self):
        super().__init__()
        self.backbone = timm_backbone("test_resnet", frozen_stages=2)
        self.head = nn.Linear(self.backbone.num_features, 3)
        self.modes = []

    def training_step(self, batch, batch_idx):
        self.modes.append((self.backbone.body.bn1.training, self.backbone.body.layer3.training))
        images, targets = batch
        return nn.functional.cross_entropy(self.head(self.backbone(images)), targets)

    def validation_step(self, batch, batch_idx):
        self.head(self.backbone(batch[0]))

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)


def test_frozen_stages_stay_frozen_through_a_lightning_fit_with_validation(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(16, 3, 64, 32), torch.arange(16) % 3)
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    module = _TinyModule()
    frozen = ("body.conv1.", "body.bn1.", "body.layer1.", "body.layer2.")
    before = running_stats(module.backbone)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, num_sanity_val_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader, loader)
    assert module.modes == [(False, True)] * 4  # every step, after the sanity check and each validation
    after = running_stats(module.backbone)
    for name, value in before.items():
        assert torch.equal(after[name], value) is under(name, frozen), name


def test_the_config_key_reaches_the_strong_network(make_cfg):
    cfg = make_cfg(["task=reid_strong", "model.net.backbone.pretrained=false", "model.net.backbone.frozen_stages=2"])
    assert cfg.model.net.backbone.frozen_stages == 2
    net = instantiate({**cfg.model.net, "num_identities": 4})
    assert net.backbone.frozen_modules == ("conv_stem", "bn1", "blocks.0", "blocks.1")
