"""Density clustering on the k-reciprocal Jaccard graph: recovers identities, bounded graph, honest pair scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.metrics.clustering import cluster_embeddings, cluster_means, pairwise_scores
from src.metrics.rerank import jaccard_graph


def blobs(identities: int = 30, per_identity: int = 6, dim: int = 64, spread: float = 0.15, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(identities, dim, generator=generator)
    features = centres.repeat_interleave(per_identity, 0) + spread * torch.randn(identities * per_identity, dim, generator=generator)
    return features, np.repeat(np.arange(identities), per_identity)


def test_dbscan_on_the_jaccard_graph_recovers_the_identities():
    features, truth = blobs()
    cluster_ids = cluster_embeddings(features, "cosine", k1=6, k2=2, eps=0.5, min_samples=3)
    scores = pairwise_scores(truth, cluster_ids)
    assert scores["clusters"] == 30 and scores["outliers"] == 0, scores
    assert scores["pairwise_f"] > 0.99, scores


def test_isolated_points_are_outliers():
    features, _ = blobs(identities=5, per_identity=6)
    lonely = 50 * torch.randn(3, features.shape[1], generator=torch.Generator().manual_seed(1))
    cluster_ids = cluster_embeddings(torch.cat([features, lonely]), "euclidean", k1=6, k2=2, eps=0.5, min_samples=3)
    assert (cluster_ids[-3:] == -1).all() and (cluster_ids[:-3] >= 0).all()


def test_pairwise_scores_count_pairs_and_outliers_as_singletons():
    scores = pairwise_scores([0, 0, 1, 1], [0, 0, 0, -1])
    # predicted pairs (0,1) (0,2) (1,2): one is a true pair; true pairs (0,1) (2,3): one found
    assert scores["pairwise_precision"] == pytest.approx(1 / 3) and scores["pairwise_recall"] == pytest.approx(1 / 2)
    assert scores["pairwise_f"] == pytest.approx(0.4) and scores["clusters"] == 1 and scores["outliers"] == 1
    assert pairwise_scores([0, 0, 1], [-1, -1, -1])["pairwise_precision"] == 0


def test_the_jaccard_graph_keeps_only_close_pairs_of_the_full_matrix():
    features, _ = blobs(identities=8, per_identity=5, spread=0.5)
    full = jaccard_graph(features, "cosine", k1=5, k2=2, max_distance=1.01).toarray()  # every pair is <= 1
    assert full.shape == (40, 40) and (full > 0).sum() + 40 >= 40 * 40 - 40  # dense: only the diagonal is 0
    assert np.allclose(np.diag(full), 0, atol=1e-6) and np.allclose(full, full.T, atol=1e-6)
    sparse = jaccard_graph(features, "cosine", k1=5, k2=2, max_distance=0.6)
    rows, cols = sparse.nonzero()
    kept = np.zeros_like(full, dtype=bool)
    kept[sparse.tocoo().row, sparse.tocoo().col] = True
    assert np.array_equal(kept, full < 0.6)
    assert np.allclose(sparse.toarray()[kept], full[kept], atol=1e-6)
    assert sparse.nnz < full.size / 4 and len(rows) <= sparse.nnz


def test_too_few_items_or_too_large_min_samples_are_refused():
    features, _ = blobs(identities=2, per_identity=2)
    with pytest.raises(ValueError, match="min_samples=5 is larger than the 4"):
        cluster_embeddings(features, "cosine", k1=6, k2=2, eps=0.5, min_samples=5)
    with pytest.raises(ValueError, match="at least 2"):
        jaccard_graph(features[:1])


def test_cluster_means_average_each_cluster_and_ignore_outliers():
    values = torch.tensor([[1.0, 0.0], [3.0, 2.0], [10.0, 10.0], [5.0, -5.0]])
    for ids in (np.array([0, 0, -1, 2]), torch.tensor([0, 0, -1, 2])):
        means = cluster_means(values, ids, num_clusters=3)
        torch.testing.assert_close(means, torch.tensor([[2.0, 1.0], [0.0, 0.0], [5.0, -5.0]]))
