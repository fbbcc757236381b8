"""Shared re-ID validation: embed the val split, rank queries against the gallery, log Market metrics."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import MaxMetric
from torchmetrics.functional.classification import multiclass_accuracy

from src.data.attributes import HEAD_NAMES, HEADS
from src.metrics.distance import pairwise_distance
from src.metrics.rank import evaluate_rank
from src.models.base import MarketModule
from src.models.gather import gather_unique


class RetrievalValidation(MarketModule):
    """Subclasses call ``collect_validation`` per batch and ``validation_metrics``/``log_validation`` at epoch end.

    After each validation epoch the module holds ``val_retrieval``: the query->gallery distance matrix
    and labels, which the threshold-sweep and rank-list callbacks read.
    """

    metric: str = "euclidean"
    network_kind = "reid"

    def __init__(self):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self.val_retrieval: dict | None = None
        self.val_map_best = MaxMetric()
        self.val_map_best.persistent(True)  # the running best survives a resume from checkpoint
        self._val_parts: list[dict] = []

    def retrieval_metrics(self, embeddings: torch.Tensor, pids, camids, is_query: torch.Tensor, names=None) -> dict:
        query, gallery = is_query, ~is_query
        qnames = [n for n, q in zip(names, is_query.tolist()) if q] if names else None
        gnames = [n for n, q in zip(names, is_query.tolist()) if not q] if names else None
        distmat = pairwise_distance(embeddings[query], embeddings[gallery], self.metric, qnames, gnames)
        pids, camids = np.asarray(pids), np.asarray(camids)
        q = query.numpy()
        result = evaluate_rank(distmat, pids[q], pids[~q], camids[q], camids[~q], max_rank=10)
        self.val_retrieval = {
            "distmat": distmat, "q_pids": pids[q], "g_pids": pids[~q], "q_camids": camids[q], "g_camids": camids[~q],
            "q_index": np.flatnonzero(q), "g_index": np.flatnonzero(~q), "cmc": result["cmc"],
        }
        if not self.trainer.sanity_checking:
            self.val_map_best(torch.tensor(result["mAP"]))
        best = self.val_map_best.compute() if self.val_map_best.update_count else torch.tensor(result["mAP"])
        return {
            "val/mAP_best": float(best), "val/mAP": result["mAP"], "val/rank1": result["rank1"], "val/rank5": result["rank5"],
            "val/rank10": result["rank10"], "val/mINP": result["mINP"],
        }

    def collect_validation(self, embedding: torch.Tensor, logits: dict[str, torch.Tensor], batch: dict) -> None:
        """Keep what one validation batch contributes (predicted attribute classes, not logits)."""
        self._val_parts.append({
            "embedding": embedding, "index": batch["index"], "pid": batch["pid"], "camid": batch["camid"],
            "labels": batch["labels"], "predicted": torch.stack([logits[n].argmax(1) for n in HEAD_NAMES], dim=1),
        })

    def validation_metrics(self) -> dict:
        """Retrieval and attribute metrics over the whole (rank-gathered, de-duplicated) validation split."""
        parts = gather_unique(self, {k: torch.cat([p[k] for p in self._val_parts]) for k in self._val_parts[0]})
        self._val_parts.clear()
        datamodule = self.trainer.datamodule
        is_query = datamodule.val_is_query[parts["index"]]
        names = [datamodule.val_records[i].name for i in parts["index"].tolist()]
        metrics = self.retrieval_metrics(parts["embedding"], parts["pid"].numpy(), parts["camid"].numpy(), is_query, names)
        accuracies = [multiclass_accuracy(parts["predicted"][:, i], parts["labels"][:, i], h.num_classes, average="micro")
                      for i, h in enumerate(HEADS)]
        metrics.update({f"val/acc/{h.name}": a for h, a in zip(HEADS, accuracies)})
        metrics["val/mean_acc"] = torch.stack(accuracies).mean()
        return metrics

    def log_validation(self, metrics: dict) -> None:
        self.log_dict({k: float(v) for k, v in metrics.items() if k != "val/mAP"})
        self.log("val/mAP", float(metrics["val/mAP"]), prog_bar=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["retrieval_threshold"] = float(self.threshold)
