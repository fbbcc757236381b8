"""Shared re-ID validation: embed the val split, rank queries against the gallery, log Market metrics."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torchmetrics import MaxMetric

from src.metrics.distance import pairwise_distance
from src.metrics.rank import evaluate_rank


class RetrievalValidation(pl.LightningModule):
    """Subclasses return val embeddings from ``validation_step``-collected pieces via ``val_embeddings``.

    After each validation epoch the module holds ``val_retrieval``: the query->gallery distance matrix
    and labels, which the threshold-sweep and rank-list callbacks read.
    """

    metric: str = "euclidean"

    def __init__(self):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self.val_retrieval: dict | None = None
        self.val_map_best = MaxMetric()

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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["retrieval_threshold"] = float(self.threshold)
