"""A stateless Lightning callback for tests/reliability/test_resume.py, added with a Hydra override.

It appends one line per training epoch start to ``log_file`` (which epochs this process trained) and one
``clock <epoch> <seconds>`` line with the run's training clock (Lightning's ``Timer``) read at that moment, and,
when ``stall_epoch``/``stall_batch`` are set, writes ``stalled <epoch> <batch> <global_step>`` after that
training batch (its optimizer step done, nothing of the epoch checkpointed yet) and then sleeps, so the
test can SIGKILL the process at a known point in the middle of an epoch. It keeps no state, so it adds
nothing to checkpoints and does not change what is trained.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer


class TrainingProbe(pl.Callback):
    def __init__(self, log_file: str, stall_epoch: int | None = None, stall_batch: int | None = None, stall_s: float = 600):
        self.log_file = Path(log_file)
        self.stall_epoch, self.stall_batch, self.stall_s = stall_epoch, stall_batch, stall_s

    def _note(self, line: str) -> None:
        with open(self.log_file, "a") as handle:
            handle.write(line + "\n")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._note(f"epoch {trainer.current_epoch} {trainer.global_step}")
        clocks = [callback for callback in trainer.callbacks if isinstance(callback, Timer)]
        if clocks:
            self._note(f"clock {trainer.current_epoch} {clocks[0].time_elapsed('train')!r}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.stall_epoch and batch_idx == self.stall_batch:
            self._note(f"stalled {trainer.current_epoch} {batch_idx} {trainer.global_step}")
            time.sleep(self.stall_s)  # the test kills us here
