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


def test_precision_and_threads_compose_as_plain_keys(make_cfg):
    """``trainer.precision=...`` overrides a key of conf/trainer (no ``+``); src.export takes ``torch_threads`` like the
    other commands; the index needs no dataset config and picks the accelerator itself."""
    cfg = make_cfg(["task=attributes", "trainer.precision=bf16-mixed"])
    assert cfg.trainer.precision == "bf16-mixed"
    assert make_cfg(["task=attributes"]).trainer.precision == "32-true"
    assert make_cfg(["ckpt_path=a.ckpt", "torch_threads=1"], "export").torch_threads == 1
    index = make_cfg(["ckpt_path=a.ckpt", "gallery=g"], "index")
    assert index.trainer.accelerator == "auto" and index.data.height is None and "source" not in index.data
    subfolders = {name: make_cfg(overrides, name).subfolders for name, overrides in
                  (("index", []), ("search", ["index=i", "query=q"]), ("predict", ["ckpt_path=a.ckpt", "input=x"]))}
    assert subfolders == {"index": True, "search": True, "predict": False}  # the lister's choice, explicit everywhere
