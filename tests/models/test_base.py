"""src/models/base.py: what every LightningModule shares, the optimizer / scheduler wiring from config partials and
the network half of the checkpoint contract."""

from __future__ import annotations

import torch

from src.models.strong_module import StrongReidModule
from tests.models.conftest import BACKBONE, OPTIMIZER, SCHEDULER


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


def test_without_a_scheduler_the_optimizer_alone_gets_only_the_trainable_parameters():
    net = {"_target_": "src.models.strong.StrongReidNet", "backbone": BACKBONE, "num_identities": 2}
    module = StrongReidModule(net, OPTIMIZER)
    frozen = list(module.net.backbone.parameters())
    for parameter in frozen:
        parameter.requires_grad_(False)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.05
    handed = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert handed and not handed & {id(p) for p in frozen}
    assert handed == {id(p) for p in module.parameters() if p.requires_grad}
