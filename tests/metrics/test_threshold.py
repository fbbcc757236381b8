"""Tests for src.metrics.threshold (thresholded retrieval sweep)."""

import numpy as np
import pandas as pd
import pytest

from src.metrics.distance import pairwise_distance
from src.metrics.rank import evaluate_rank
from src.metrics.threshold import (
    best_threshold,
    retrieve_within,
    threshold_sweep,
    threshold_sweep_from_features,
)

HAND = dict(
    distmat=np.array([[0.1, 0.2, 0.3, 0.4, 0.5]]),
    q_pids=np.array([1]), g_pids=np.array([2, 1, 1, 3, 1]),
    q_camids=np.array([0]), g_camids=np.array([1, 0, 1, 1, 2]),
)  # g1 is same pid + same cam -> excluded; valid list: neg .1, POS .3, neg .4, POS .5


def brute_force(distmat, q_pids, g_pids, q_camids, g_camids, t):
    """Direct per-query implementation of the definitions."""
    rows = []
    for i in range(len(distmat)):
        keep = ~((g_pids == q_pids[i]) & (g_camids == q_camids[i]))
        d, pos = distmat[i][keep], (g_pids[keep] == q_pids[i])
        if not pos.any():
            continue
        order = np.argsort(d, kind="stable")
        hits = pos[order[d[order] < t]]
        n, tp = len(hits), hits.sum()
        ap = np.sum(np.cumsum(hits) / np.arange(1, n + 1) * hits) / pos.sum()
        p, r = (tp / n if n else 0.0), tp / pos.sum()
        rows.append((ap, p, r, 2 * p * r / (p + r) if tp else 0.0, n))
    return np.mean(rows, axis=0)


def test_hand_made_values():
    table = threshold_sweep(**HAND, thresholds=[0.15, 0.3, 0.35, 0.45, 1.0])
    assert list(table.columns) == ["threshold", "mAP", "precision", "recall", "f1", "mean_returned"]
    expected = [
        # t,   AP,   P,     R,   F1,   returned
        (0.15, 0.0, 0.0, 0.0, 0.0, 1),
        (0.3, 0.0, 0.0, 0.0, 0.0, 1),  # strict "<": the positive at exactly 0.3 is not returned
        (0.35, 0.25, 0.5, 0.5, 0.5, 2),
        (0.45, 0.25, 1 / 3, 0.5, 0.4, 3),
        (1.0, 0.5, 0.5, 1.0, 2 / 3, 4),
    ]
    np.testing.assert_allclose(table.to_numpy(), np.array(expected), atol=1e-12)


def test_default_grid():
    table = threshold_sweep(**HAND)
    assert len(table) == 141
    assert table["threshold"].iloc[0] == pytest.approx(1.0) and table["threshold"].iloc[-1] == pytest.approx(15.0)
    assert (table["recall"] == 1.0).all()  # every distance here is below 1


@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force(make_data, seed):
    qf, gf, qp, gp, qc, gc = make_data(40, 220, 20, 4, 16, seed, noise=1.0)
    d = pairwise_distance(qf, gf).numpy()
    grid = np.quantile(d, [0.001, 0.01, 0.05, 0.2, 0.6])
    table = threshold_sweep(d, qp, gp, qc, gc, thresholds=grid)
    for i, t in enumerate(grid):
        np.testing.assert_allclose(table.iloc[i, 1:].to_numpy(), brute_force(d, qp, gp, qc, gc, t), atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_huge_threshold_gives_evaluate_rank_map(make_data, ties):
    qf, gf, qp, gp, qc, gc = make_data(50, 300, 25, 6, 16, 11, noise=1.0)
    d = pairwise_distance(qf, gf).numpy().astype(np.float64)
    if ties:
        d = np.round(d)  # many exact ties: both must use the same tie order
    table = threshold_sweep(d, qp, gp, qc, gc, thresholds=[1e-9, 1e9])
    rank = evaluate_rank(d, qp, gp, qc, gc)
    assert table["mAP"].iloc[1] == pytest.approx(rank["mAP"], abs=1e-12)
    assert table["recall"].iloc[1] == 1.0
    assert table["mAP"].iloc[0] == 0.0 and table["mean_returned"].iloc[0] == 0.0


def test_chunked_and_from_features_agree(make_data):
    qf, gf, qp, gp, qc, gc = make_data(33, 150, 12, 3, 8, 5)
    gp = gp.copy()
    gp[::10] = -1
    d = pairwise_distance(qf, gf)
    grid = np.linspace(0.5, 6, 12)
    full = threshold_sweep(d, qp, gp, qc, gc, thresholds=grid)
    pd.testing.assert_frame_equal(threshold_sweep(d, qp, gp, qc, gc, thresholds=grid, chunk_size=4), full)
    feats = threshold_sweep_from_features(qf, gf, qp, gp, qc, gc, thresholds=grid, chunk_size=5)
    pd.testing.assert_frame_equal(feats, full, atol=1e-9)


def test_invalid_thresholds():
    with pytest.raises(ValueError, match="strictly increasing"):
        threshold_sweep(**HAND, thresholds=[2.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        threshold_sweep(**HAND, thresholds=[])


def test_best_threshold_ties_go_to_smallest():
    table = pd.DataFrame({"threshold": [4.0, 1.0, 2.0, 3.0], "mAP": [0.2, 0.1, 0.5, 0.5],
                          "f1": [0.9, 0.3, 0.3, 0.9]})
    assert best_threshold(table) == 2.0
    assert best_threshold(table, "mAP") == 2.0
    assert best_threshold(table, objective="f1") == 3.0
    with pytest.raises(ValueError, match="objective"):
        best_threshold(table, "recall")


def test_retrieve_within():
    row = np.array([0.5, 0.1, 0.3, 0.1, 0.9])
    np.testing.assert_array_equal(retrieve_within(row, 0.6), [1, 3, 2, 0])  # ties by index
    np.testing.assert_array_equal(retrieve_within(row, 0.5), [1, 3, 2])  # strict
    lists = retrieve_within(np.stack([row, row[::-1], np.full(5, 7.0)]), 0.35)
    assert [list(x) for x in lists] == [[1, 3, 2], [1, 3, 2], []]
    excluded = row.copy()
    excluded[1] = np.inf
    np.testing.assert_array_equal(retrieve_within(excluded, 1.0), [3, 2, 0, 4])
