"""Wall-clock training time as a logged metric, so quality can be plotted against time spent.

Logs ``time/train_min`` (minutes of fitting so far: training and validation, not the one-off setup)
at every validation epoch end. The running total is kept in checkpoints, so a resumed run continues
the same clock instead of restarting from zero.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl


class TrainingClock(pl.Callback):
    def __init__(self):
        self.elapsed_before = 0.0   # seconds spent in earlier processes of this run (from the checkpoint)
        self._started: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.monotonic()

    def elapsed_seconds(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._started if self._started is not None else 0.0)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._started is not None and not trainer.sanity_checking:
            pl_module.log("time/train_min", self.elapsed_seconds() / 60.0, sync_dist=False)

    def state_dict(self) -> dict:
        return {"elapsed_seconds": self.elapsed_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.elapsed_before = float(state_dict.get("elapsed_seconds", 0.0))
