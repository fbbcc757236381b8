"""Shared by the model tests: tiny network / optimizer configs, a tiny labelled batch, a few optimizer steps
without a Trainer, and a fixture that turns ``self.log`` off (it needs a Trainer; a step's arithmetic does not)."""

from __future__ import annotations

import pytest
import torch

from src.data.attributes import HEADS

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


@pytest.fixture
def no_logging(monkeypatch):
    """``log`` and ``log_dict`` of every LightningModule do nothing (use with ``pytest.mark.usefixtures``)."""
    import pytorch_lightning as pl

    monkeypatch.setattr(pl.LightningModule, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(pl.LightningModule, "log_dict", lambda *args, **kwargs: None)
