"""LightningModule of the report's stage 1: summed cross-entropy over the 12 attribute heads."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from src.data.attributes import HEAD_NAMES, HEADS
from src.models.base import MarketModule
from src.models.gather import gather_unique


def plain(config) -> dict:
    """OmegaConf -> plain dict so checkpoints load with ``torch.load(weights_only=True)``."""
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


def attribute_accuracies(prefix: str) -> MetricCollection:
    return MetricCollection(
        {h.name: MulticlassAccuracy(num_classes=h.num_classes, average="micro") for h in HEADS}, prefix=prefix
    )


class AttributeModule(MarketModule):
    """``net`` (config of a MarketClassifier) + optimizer/scheduler partials; logs per-attribute accuracy.

    ``id_loss_weight > 0`` adds an identity classifier on the 512-d feature (multi-task learning with
    identities); 0 is the report's model.
    """

    network_kind = "attributes"

    def __init__(self, net: dict, optimizer: dict, scheduler: dict | None = None, id_loss_weight: float = 0.0,
                 num_identities: int | None = None, channels_last: bool = True):
        super().__init__()
        self.save_hyperparameters({
            "net": plain(net), "optimizer": plain(optimizer), "scheduler": plain(scheduler),
            "id_loss_weight": id_loss_weight, "num_identities": num_identities, "channels_last": channels_last,
        })
        self.net = instantiate(self.hparams.net)
        self.id_classifier = nn.Linear(self.net.feature_dim, num_identities) if num_identities else None
        self.train_acc = attribute_accuracies("train/acc/")
        self._val_parts: list[dict] = []
        self.train_loss = MeanMetric()
        self.val_mean_acc_best = MaxMetric()
        self.val_mean_acc_best.persistent(True)  # the running best survives a resume from checkpoint

    def setup(self, stage: str) -> None:
        if self.hparams.id_loss_weight > 0 and self.id_classifier is None:
            self.hparams.num_identities = self.trainer.datamodule.num_train_ids
            self.id_classifier = nn.Linear(self.net.feature_dim, self.hparams.num_identities)
            self.pid_to_label = self.trainer.datamodule.pid_to_label

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(self._layout(images))

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def attribute_loss(self, logits: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return sum(nn.functional.cross_entropy(logits[name], labels[:, i]) for i, name in enumerate(HEAD_NAMES))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        features = self.net.features(self._layout(batch["image"]))
        logits = self.net.classify(features)
        loss = self.attribute_loss(logits, batch["labels"])
        if self.id_classifier is not None and self.hparams.id_loss_weight > 0:
            targets = torch.tensor([self.pid_to_label[int(p)] for p in batch["pid"]], device=features.device)
            loss = loss + self.hparams.id_loss_weight * nn.functional.cross_entropy(self.id_classifier(features), targets)
        self.train_loss(loss)
        for i, name in enumerate(HEAD_NAMES):
            self.train_acc[name].update(logits[name], batch["labels"][:, i])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        self._val_parts.append({
            "index": batch["index"], "labels": batch["labels"],
            "predicted": torch.stack([logits[name].argmax(1) for name in HEAD_NAMES], dim=1),
            "loss": torch.stack([nn.functional.cross_entropy(logits[name], batch["labels"][:, i], reduction="none")
                                 for i, name in enumerate(HEAD_NAMES)]).sum(0),
        })

    def on_validation_epoch_end(self) -> None:
        # validation runs after the epoch's last training batch, so the train accuracies are complete here
        if not self.trainer.sanity_checking and self.train_acc[HEAD_NAMES[0]].update_count:
            train_accuracies = self.train_acc.compute()
            self.log_dict(train_accuracies, sync_dist=True)  # DDP: equal on every rank (torchmetrics syncs)
            self.log("train/mean_acc", torch.stack(list(train_accuracies.values())).mean(), sync_dist=True)
            self.log("train/loss", self.train_loss.compute(), prog_bar=True, sync_dist=True)
            self.train_acc.reset()
            self.train_loss.reset()
        parts = gather_unique(self, {k: torch.cat([p[k] for p in self._val_parts]) for k in self._val_parts[0]})
        self._val_parts.clear()
        accuracies = {
            f"val/acc/{h.name}": multiclass_accuracy(parts["predicted"][:, i], parts["labels"][:, i], h.num_classes, average="micro")
            for i, h in enumerate(HEADS)
        }
        mean = torch.stack(list(accuracies.values())).mean()
        self.log_dict(accuracies)
        self.log("val/loss", parts["loss"].mean())
        self.log("val/mean_acc", mean, prog_bar=True)
        if not self.trainer.sanity_checking:
            self.val_mean_acc_best(mean)
        self.log("val/mean_acc_best", self.val_mean_acc_best.compute() if self.val_mean_acc_best.update_count else mean)
