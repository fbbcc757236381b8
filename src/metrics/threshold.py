"""Thresholded retrieval: return every gallery image closer than ``t``.

For a query and threshold ``t`` the returned list holds the valid gallery items
(Market-1501 exclusions as in :mod:`src.metrics.rank`) with distance ``< t``,
sorted by distance. Per query::

    AP_t      = sum(precision@k over returned positives at rank k) / #positives
    precision = TP / #returned   (0 if nothing is returned)
    recall    = TP / #positives
    F1        = 2 * precision * recall / (precision + recall)   (0 if TP == 0)

where #positives counts every valid positive, returned or not. Each column of
the sweep is the mean over valid queries (those with at least one positive);
``mean_returned`` is the mean list length over the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .distance import as_numpy
from .rank import ranked_blocks_from_features, ranked_blocks_from_matrix

DEFAULT_THRESHOLDS = np.arange(1, 15.0001, 0.1)
COLUMNS = ("threshold", "mAP", "precision", "recall", "f1", "mean_returned")


def _per_row_counts(rows: np.ndarray, buckets: np.ndarray, num_rows: int, num_t: int, weights=None) -> np.ndarray:
    """(num_rows, num_t) running sums: entry [r, j] sums items of row r whose value is < thresholds[j]."""
    flat = np.bincount(rows * (num_t + 1) + buckets, weights=weights, minlength=num_rows * (num_t + 1))
    return flat.reshape(num_rows, num_t + 1).cumsum(1)[:, :num_t]


def _sweep(blocks, thresholds) -> pd.DataFrame:
    t = np.asarray(thresholds if thresholds is not None else DEFAULT_THRESHOLDS, dtype=np.float64).reshape(-1)
    if len(t) == 0 or not np.isfinite(t).all() or (np.diff(t) <= 0).any():
        raise ValueError("thresholds must be a non-empty, finite, strictly increasing 1-D sequence")
    num_t = len(t)
    totals = np.zeros((5, num_t))  # AP, precision, recall, F1, returned
    num_valid = 0
    for _, block, r in blocks:
        n = len(block)
        bucket = torch.searchsorted(torch.from_numpy(t), torch.from_numpy(block).double(), right=True)
        hist = torch.zeros(n, num_t + 1, dtype=torch.int64)
        hist.scatter_add_(1, bucket, torch.ones((), dtype=torch.int64).expand_as(bucket))
        closer = hist.cumsum(1)[:, :num_t].numpy()  # items with d < t (incl. excluded ones)

        def buckets(d):
            return np.searchsorted(t, d.astype(np.float64), side="right")

        removed = _per_row_counts(r.rem_row, buckets(r.rem_dist), n, num_t)
        num_pos = np.bincount(r.pos_row, minlength=n)
        first = np.repeat(np.cumsum(num_pos) - num_pos, num_pos)
        ordinal = np.arange(1, len(r.pos_row) + 1) - first
        pos_bucket = buckets(r.pos_dist)
        tp = _per_row_counts(r.pos_row, pos_bucket, n, num_t)
        ap_sum = _per_row_counts(r.pos_row, pos_bucket, n, num_t, weights=ordinal / r.pos_rank)

        valid = num_pos > 0
        returned = (closer - removed)[valid].astype(np.float64)
        tp, ap_sum, pos = tp[valid].astype(np.float64), ap_sum[valid], num_pos[valid, None].astype(np.float64)
        precision = np.divide(tp, returned, out=np.zeros_like(tp), where=returned > 0)
        totals += [(ap_sum / pos).sum(0), precision.sum(0), (tp / pos).sum(0),
                   (2 * tp / (returned + pos)).sum(0), returned.sum(0)]
        num_valid += int(valid.sum())
    if num_valid == 0:
        raise ValueError("no query has a matching gallery image from another camera")
    return pd.DataFrame(dict(zip(COLUMNS, [t, *(totals / num_valid)])))


def threshold_sweep(distmat, q_pids, g_pids, q_camids, g_camids, thresholds: Sequence[float] | np.ndarray | None = None,
                    ignore_pids: Sequence[int] = (-1,), chunk_size: int | None = None) -> pd.DataFrame:
    """Evaluate thresholded retrieval for every threshold (default ``np.arange(1, 15.0001, 0.1)``).

    Returns a DataFrame with columns ``threshold, mAP, precision, recall, f1,
    mean_returned`` (one row per threshold, ascending).
    """
    _, _, blocks = ranked_blocks_from_matrix(
        distmat, q_pids, g_pids, q_camids, g_camids, ignore_pids, chunk_size)
    return _sweep(blocks, thresholds)


def threshold_sweep_from_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric: str = "euclidean",
                                  thresholds: Sequence[float] | np.ndarray | None = None,
                                  ignore_pids: Sequence[int] = (-1,), chunk_size: int | None = None) -> pd.DataFrame:
    """:func:`threshold_sweep` computing distances block by block (never the full Q x G matrix)."""
    _, _, blocks = ranked_blocks_from_features(
        qf, gf, q_pids, g_pids, q_camids, g_camids, metric, ignore_pids, chunk_size)
    return _sweep(blocks, thresholds)


def best_threshold(table: pd.DataFrame, objective: str = "map") -> float:
    """Threshold maximising ``objective`` (``"map"`` or ``"f1"``); ties go to the smallest threshold."""
    column = {"map": "mAP", "f1": "f1"}.get(objective.lower())
    if column is None:
        raise ValueError(f"objective must be 'map' or 'f1', got {objective!r}")
    if table.empty:
        raise ValueError("empty threshold table")
    ordered = table.sort_values("threshold", kind="stable")
    return float(ordered["threshold"].iloc[int(np.argmax(ordered[column].to_numpy()))])


def retrieve_within(distances, threshold: float) -> np.ndarray | list[np.ndarray]:
    """Gallery indices with distance ``< threshold``, nearest first (ties by index).

    ``distances`` is one query row (returns an index array) or a (Q, G) matrix
    (returns a list of Q arrays). Set excluded entries to ``inf`` beforehand.
    """
    d = as_numpy(distances)
    if d.ndim not in (1, 2):
        raise ValueError(f"distances must be 1-D or 2-D, got shape {d.shape}")
    matrix = np.atleast_2d(d)
    rows, cols = np.nonzero(matrix < threshold)
    order = np.lexsort((cols, matrix[rows, cols], rows))
    per_row = np.split(cols[order], np.cumsum(np.bincount(rows, minlength=len(matrix)))[:-1])
    return per_row[0] if d.ndim == 1 else per_row
