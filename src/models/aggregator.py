"""The report's stage 2: a small aggregator over frozen stage-1 outputs, trained with a triplet loss."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from src.models.attribute_module import plain
from src.models.feature_cache import cached_descriptors
from src.models.loading import CheckpointError, load_attribute_net
from src.models.reid_module import RetrievalValidation


class Aggregator(nn.Module):
    """543 (512 features + 41 head outputs) -> BatchNorm -> Linear 128 -> ReLU -> dropout."""

    def __init__(self, in_features: int = 543, embed_dim: int = 128, dropout: float = 0.2):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(in_features), nn.Linear(in_features, embed_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.layers(descriptors)


class ReportReidNet(nn.Module):
    """Frozen stage-1 MarketClassifier + Aggregator; ``embed`` maps images to retrieval embeddings."""

    def __init__(self, stage1: nn.Module, aggregator: dict | None = None):
        super().__init__()
        self.stage1 = stage1.requires_grad_(False)
        self.aggregator = Aggregator(stage1.descriptor_dim, **(aggregator or {}))

    def train(self, mode: bool = True):
        super().train(mode)
        self.stage1.eval()  # frozen: BatchNorm statistics and dropout stay in inference mode
        return self

    def descriptors(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.stage1.descriptor(images.contiguous(memory_format=torch.channels_last))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.aggregator(self.descriptors(images))

    def embed_and_classify(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One backbone pass -> (retrieval embedding, attribute logits)."""
        descriptors = self.descriptors(images)
        return self.aggregator(descriptors), self.stage1.split_descriptor(descriptors)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute logits of the frozen stage-1 network (the attribute side of this model)."""
        return self.stage1(images.contiguous(memory_format=torch.channels_last))


def latest_attribute_checkpoint(outputs_dir: str | Path) -> Path:
    """Best checkpoint of the newest run under ``outputs_dir`` (``model.stage1_runs``) that finished: its metrics.json
    names it."""
    runs = sorted(Path(outputs_dir).glob("*/metrics.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for metrics in runs:
        best = json.loads(metrics.read_text()).get("best_checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    raise CheckpointError(
        f"no finished attributes run under {outputs_dir}; train one first (python -m src.train task=attributes) "
        "or pass model.stage1_ckpt=PATH"
    )


class AggregatorModule(RetrievalValidation):
    """Frozen stage-1 network + trainable Aggregator. ``cached``: stage-1 descriptors computed once per image."""

    def __init__(self, stage1_ckpt: str | None, optimizer: dict, aggregator: dict | None = None, margin: float = 1.0,
                 cached: bool = True, cache_dir: str = ".cache/descriptors", metric: str = "euclidean",
                 scheduler: dict | None = None, net: dict | None = None, stage1_runs: str = "outputs/attributes/runs"):
        super().__init__()
        stage1_ckpt = str(stage1_ckpt or latest_attribute_checkpoint(stage1_runs))
        stage1, stage1_hparams = load_attribute_net(stage1_ckpt)
        net = net or {
            "_target_": "src.models.aggregator.ReportReidNet",
            "stage1": stage1_hparams["net"],
            "aggregator": plain(aggregator or {}),
        }
        self.save_hyperparameters(
            {
                "stage1_ckpt": stage1_ckpt,
                "optimizer": plain(optimizer),
                "net": net,
                "margin": margin,
                "cached": cached,
                "cache_dir": cache_dir,
                "metric": metric,
                "scheduler": plain(scheduler),
            }
        )
        self.metric = metric
        self.net = ReportReidNet(stage1, net["aggregator"])
        self.loss = nn.TripletMarginLoss(margin=margin)
        self.descriptors: dict[str, torch.Tensor] = {}
        self._train_distances: list[torch.Tensor] = []

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule  # Lightning set it up before this hook
        if self.hparams.cached:
            for split, dataset in (("train", datamodule.train_set), ("val", datamodule.val_set)):
                self.descriptors[split] = cached_descriptors(
                    self.net.stage1,
                    self.hparams.stage1_ckpt,
                    dataset.records,
                    self.hparams.cache_dir,
                    height=datamodule.height,
                    width=datamodule.width,
                    batch_size=datamodule.eval_batch_size,
                    images=dataset.cache,
                )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.hparams.cached:
            table = self.descriptors["train"].to(self.device)
            parts = [table[batch[k]] for k in ("anchor", "positive", "negative")]
        else:
            parts = [self.net.descriptors(batch[f"{k}_image"]) for k in ("anchor", "positive", "negative")]
        anchor, positive, negative = (self.net.aggregator(p) for p in parts)
        loss = self.loss(anchor, positive, negative)
        self._train_distances.append(
            torch.stack(
                [
                    nn.functional.pairwise_distance(anchor, positive).mean(),
                    nn.functional.pairwise_distance(anchor, negative).mean(),
                ]
            ).detach()
        )
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(anchor), sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.hparams.cached:
            descriptors = self.descriptors["val"].to(self.device)[batch["index"]]
        else:
            descriptors = self.net.descriptors(batch["image"])
        self.collect_validation(self.net.aggregator(descriptors), self.net.stage1.split_descriptor(descriptors), batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self.validation_metrics()
        if self._train_distances and not self.trainer.sanity_checking:
            distances = torch.stack(self._train_distances).mean(0)
            metrics["train/dist_ap"], metrics["train/dist_an"] = distances[0], distances[1]
            self._train_distances.clear()
        self.log_validation(metrics)
