"""Density clustering of embeddings into pseudo identities (k-reciprocal Jaccard distance + DBSCAN), and its
pairwise precision / recall against true identities."""

from __future__ import annotations

import numpy as np
import torch

from src.metrics.rerank import jaccard_graph


def cluster_embeddings(features, metric: str, *, k1: int, k2: int, eps: float, min_samples: int) -> np.ndarray:
    """Cluster ids 0..C-1 per item, -1 for outliers (DBSCAN on the k-reciprocal Jaccard graph)."""
    from sklearn.cluster import DBSCAN

    if min_samples > len(features):
        raise ValueError(f"min_samples={min_samples} is larger than the {len(features)} images to cluster")
    if len(features) < 2:
        return np.full(len(features), -1)
    graph = jaccard_graph(features, metric, k1=k1, k2=k2, max_distance=eps)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(graph)


def pairwise_scores(true_ids, cluster_ids) -> dict[str, float]:
    """Pairwise precision / recall / F of a clustering (outliers count as clusters of one) and the cluster counts."""
    from sklearn.metrics.cluster import pair_confusion_matrix

    true_ids, cluster_ids = np.asarray(true_ids), np.asarray(cluster_ids).copy()
    outliers = cluster_ids < 0
    cluster_ids[outliers] = cluster_ids.max(initial=-1) + 1 + np.arange(outliers.sum())
    (_, false_pairs), (missed_pairs, true_pairs) = pair_confusion_matrix(true_ids, cluster_ids) // 2
    precision = true_pairs / max(1, true_pairs + false_pairs)
    recall = true_pairs / max(1, true_pairs + missed_pairs)
    return {
        "pairwise_precision": float(precision),
        "pairwise_recall": float(recall),
        "pairwise_f": float(2 * precision * recall / max(1e-12, precision + recall)),
        "clusters": int(len(np.unique(cluster_ids[~outliers]))),
        "outliers": int(outliers.sum()),
        "identities": int(len(np.unique(true_ids))),
    }


def cluster_means(values: torch.Tensor, cluster_ids, num_clusters: int) -> torch.Tensor:
    """(num_clusters, D) mean of ``values`` per cluster id (an array or tensor; rows with a negative id ignored, a
    cluster without rows gets zeros)."""
    ids = torch.as_tensor(cluster_ids, dtype=torch.long, device=values.device)
    kept = ids >= 0
    sums = torch.zeros(num_clusters, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, ids[kept], values[kept])
    return sums / torch.bincount(ids[kept], minlength=num_clusters).clamp_min(1).unsqueeze(1).to(values.dtype)
