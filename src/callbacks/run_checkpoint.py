"""The run's checkpoints: the best by the task's monitor, and ``last.ckpt`` after every validation.

Lightning 2.6's ModelCheckpoint writes ``last.ckpt`` only in a step that also wrote a best checkpoint, so after an
epoch that did not improve, ``last.ckpt`` still held an older epoch: ``ckpt_path=last`` would resume from it and a
checkpoint's contract could describe an earlier state of the run (e.g. the input size before a progressive-resolution
switch). This subclass writes ``last.ckpt`` at every validation end as well.
"""

from __future__ import annotations

from pytorch_lightning.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer) and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
