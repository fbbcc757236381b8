"""Wall-clock training time as a logged metric, so quality can be plotted against time spent.

Lightning's ``Timer`` measures the fit (training and validation, not the one-off setup) and keeps the time in
checkpoints, so a resumed run continues the same clock; this subclass logs it as ``time/train_min`` at every
validation epoch end. It also enforces ``trainer.max_time`` (passed as ``duration``): Lightning makes no Timer of
its own when the callbacks hold one.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer


class TrainingClock(Timer):
    def __init__(self, duration: str | None = None, interval: str = "step"):
        super().__init__(duration=duration, interval=interval, verbose=duration is not None)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start_time("train") is not None and not trainer.sanity_checking:
            pl_module.log("time/train_min", self.time_elapsed("train") / 60.0, sync_dist=True)
