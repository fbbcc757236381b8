"""What every LightningModule of the project shares: optimizer/scheduler wiring from config partials, and the
network half of the checkpoint contract (kind, backbone, input normalisation, retrieval metric).

The data half (input size, identity split) is the datamodule's ``state_dict``; ``src.models.loading`` reads both.
"""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import instantiate

from src.models.backbones import Backbone
from src.models.schedules import BudgetSchedule

NETWORK_KEY = "network"


class MarketModule(pl.LightningModule):
    network_kind: str = ""  # "attributes" | "reid": what consumers (eval, predict, index, export) may ask of the net
    metric: str | None = None

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer)(params=self.trainable_parameters())
        if not self.hparams.get("scheduler"):
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        interval = "epoch"
        if isinstance(scheduler, BudgetSchedule):  # reads the run's progress at every optimizer step
            scheduler.follow(self.trainer)
            interval = "step"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def network_contract(self) -> dict:
        backbone = next(m for m in self.net.modules() if isinstance(m, Backbone))
        return {"kind": self.network_kind, "backbone": backbone.name, "mean": backbone.mean.flatten().tolist(),
                "std": backbone.std.flatten().tolist(), "metric": self.metric}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[NETWORK_KEY] = self.network_contract()
