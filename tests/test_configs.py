"""Every task and experiment config composes and instantiates its pieces."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from tests.conftest import CONF

TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def test_missing_task_fails_listing_the_options(make_cfg):
    with pytest.raises(ConfigCompositionException, match="task"):
        make_cfg([])


@pytest.mark.parametrize("task", TASKS)
def test_task_composes(make_cfg, task):
    cfg = make_cfg([f"task={task}"])
    assert cfg.task_name == task
    assert cfg.optimized_metric.startswith("val/")
    assert cfg.model._target_ and cfg.data._target_


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    assert cfg.task_name in TASKS


def test_seed_report_has_the_report_settings(make_cfg):
    cfg = make_cfg(["experiment=seed_report"])
    assert cfg.model.net.backbone._target_.endswith("torchvision_resnet") and cfg.model.net.backbone.depth == 34
    assert (cfg.data.height, cfg.data.width) == (256, 256)
    assert dict(cfg.model.optimizer) == {
        "_target_": "torch.optim.SGD", "_partial_": True, "lr": 1e-3, "weight_decay": 1e-5, "momentum": 0.8,
    }
    assert cfg.callbacks.early_stopping.patience == 5 and cfg.trainer.max_epochs == 200
    assert all(v == 0 for v in cfg.augment.values())


def test_callbacks_and_trainer_instantiate(make_cfg):
    cfg = make_cfg(["task=attributes"])
    callbacks = {name: instantiate(c) for name, c in cfg.callbacks.items()}
    assert callbacks["early_stopping"].monitor == "val/mean_acc"
    trainer = instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=False)
    assert trainer.max_epochs == 200
