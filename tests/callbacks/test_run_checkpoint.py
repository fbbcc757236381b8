"""src/callbacks/run_checkpoint.py: ``last.ckpt`` is written after every validation, also after an epoch that did
not improve (Lightning's ModelCheckpoint then writes nothing, so ``ckpt_path=last`` resumed an older epoch)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerFn

from src.callbacks.run_checkpoint import RunCheckpoint


class FakeTrainer(SimpleNamespace):
    """What ModelCheckpoint reads of a trainer in a fit; ``save_checkpoint`` writes the global step into the file."""

    def __init__(self):
        strategy = SimpleNamespace(broadcast=lambda value, src=0: value, barrier=lambda *args: None,
                                   reduce_boolean_decision=lambda decision, all=True: bool(decision),
                                   remove_checkpoint=lambda path: os.remove(path))
        super().__init__(fast_dev_run=False, state=SimpleNamespace(fn=TrainerFn.FITTING), sanity_checking=False,
                         global_step=0, current_epoch=0, callback_metrics={}, is_global_zero=True, loggers=[],
                         strategy=strategy, check_val_every_n_epoch=1, num_val_batches=[2], val_check_interval=1.0,
                         ckpt_path=None)

    def save_checkpoint(self, path, weights_only=False):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": self.global_step, "epoch": self.current_epoch}, path)

    def validate(self, callback, epoch: int, score: float) -> None:
        """End of one epoch of 10 steps and its validation."""
        self.current_epoch, self.global_step = epoch, 10 * (epoch + 1)
        self.callback_metrics = {"val/mAP": torch.tensor(score)}
        callback.on_validation_end(self, None)  # Lightning 2 validates inside the epoch, before its end hooks
        callback.on_train_epoch_end(self, None)


def saved_epoch(path: Path) -> int:
    return torch.load(path, weights_only=True)["epoch"]


@pytest.mark.parametrize("val_check_interval", [1.0, 0.5])  # saved at the epoch end, or at the validation end
def test_last_follows_every_validation_and_best_only_improvements(tmp_path, val_check_interval):
    callback = RunCheckpoint(dirpath=str(tmp_path), filename="best", monitor="val/mAP", mode="max", save_last=True,
                             save_top_k=1)
    trainer = FakeTrainer()
    trainer.val_check_interval = val_check_interval
    trainer.validate(callback, 0, 0.5)
    assert saved_epoch(tmp_path / "best.ckpt") == 0 and saved_epoch(tmp_path / "last.ckpt") == 0
    trainer.validate(callback, 1, 0.3)  # no improvement: Lightning alone would leave last.ckpt at epoch 0
    assert saved_epoch(tmp_path / "best.ckpt") == 0 and saved_epoch(tmp_path / "last.ckpt") == 1
    trainer.validate(callback, 2, 0.7)
    assert saved_epoch(tmp_path / "best.ckpt") == 2 and saved_epoch(tmp_path / "last.ckpt") == 2


def test_without_save_last_or_outside_a_fit_nothing_extra_is_written(tmp_path):
    no_last = RunCheckpoint(dirpath=str(tmp_path / "a"), filename="best", monitor="val/mAP", mode="max", save_last=False)
    trainer = FakeTrainer()
    trainer.validate(no_last, 0, 0.5)
    trainer.validate(no_last, 1, 0.3)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.ckpt"]
    sanity = RunCheckpoint(dirpath=str(tmp_path / "b"), monitor="val/mAP", mode="max", save_last=True)
    trainer = FakeTrainer()
    trainer.sanity_checking = True
    trainer.validate(sanity, 0, 0.5)
    assert not (tmp_path / "b").exists()


def test_with_saving_at_train_epoch_end_last_is_written_there(tmp_path):
    callback = RunCheckpoint(dirpath=str(tmp_path), filename="best", monitor="train/loss", mode="min", save_last=True,
                             save_on_train_epoch_end=True)
    trainer = FakeTrainer()
    for epoch, loss in enumerate([1.0, 2.0]):
        trainer.current_epoch, trainer.global_step = epoch, 10 * (epoch + 1)
        trainer.callback_metrics = {"train/loss": torch.tensor(loss)}
        callback.on_train_epoch_end(trainer, None)
    assert saved_epoch(tmp_path / "best.ckpt") == 0 and saved_epoch(tmp_path / "last.ckpt") == 1
