"""Progressive resolution (``callbacks.progressive_resizing.steps``): the training's input size switches at fractions
of its budget (``budget_progress``: ``trainer.max_time`` or ``max_epochs``, whichever ends first), asked before each
epoch's loaders; the checkpoint records the size the run ends at, and a run resumed after a switch continues at it."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

from src.errors import ConfigError
from src.models.schedules import budget_progress

log = logging.getLogger(__name__)


class ProgressiveResizing(pl.Callback):
    """Trains at ``data.height`` x ``data.width``, then at each step's size ``[{at: fraction, height, width}, ...]``
    from its fraction of the budget on (``[]``: off); the datamodule asks ``size()`` before each training loader."""

    def __init__(self, steps: list | None = None):
        self.steps: list[tuple[float, int, int]] = []
        self.schedule = self.steps  # with the command's own size first once training starts (setup)
        for step in map(dict, steps or ()):
            if set(step) != {"at", "height", "width"} or not (self.steps or [(0,)])[-1][0] < float(step["at"]) < 1:
                raise ConfigError(f"callbacks.progressive_resizing.steps entry {step}: expected {{at: F, height: H, "
                                  "width: W}} with 0 < at < 1, the entries in increasing order of at")
            if int(step["height"]) < 16 or int(step["width"]) < 16:
                raise ConfigError(f"callbacks.progressive_resizing.steps entry {step}: height and width must be >= 16 pixels")
            self.steps.append((float(step["at"]), int(step["height"]), int(step["width"])))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.steps and stage == "fit" and trainer.datamodule is not None:
            self.trainer, datamodule = trainer, trainer.datamodule
            self.schedule = [(0.0, datamodule.height, datamodule.width), *self.steps]
            trainer.reload_dataloaders_every_n_epochs = 1  # each epoch's loaders at the size its progress asks
            datamodule.resizing = self

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Every size of the schedule: a resumed run may be at any of them."""
        return [(h, w) for _, h, w in self.schedule]

    def size_at(self, progress: float) -> tuple[int, int]:
        return next((h, w) for at, h, w in reversed(self.schedule) if progress >= at)

    def size(self) -> tuple[int, int]:
        """The input size for the run's progress now (every DDP rank asks at the same step: rank 0's clock)."""
        size = self.size_at(budget_progress(self.trainer))
        if size != (self.trainer.datamodule.height, self.trainer.datamodule.width):
            log.info("progressive resolution: %dx%d from epoch %d", *size, self.trainer.current_epoch)
        return size
