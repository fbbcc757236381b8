"""Pairwise distances between query and gallery embeddings, whole or in row chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("euclidean", "cosine")


def _as_features(x, role: str) -> torch.Tensor:
    """Return ``x`` as a floating 2-D tensor (float64 kept, everything else float32)."""
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{role} features must be 2-D (num_images, dim), got shape {tuple(t.shape)}")
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _check_finite(x: torch.Tensor, role: str, names: Sequence[str] | None) -> None:
    """Raise ValueError naming the rows (and images) holding NaN or inf."""
    bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten().tolist()
    if not bad:
        return
    shown = bad[:10]
    where = f"rows {shown}" + (f" (+{len(bad) - len(shown)} more)" if len(bad) > len(shown) else "")
    if names is not None:
        where += f", images {[str(names[i]) for i in shown]}"
    raise ValueError(f"{role} features contain NaN/inf in {len(bad)} row(s): {where}")


def prepare_features(query, gallery, metric: str, query_names=None, gallery_names=None):
    """Validate features; return ``(query, gallery, gallery_sq_norms or None)`` for :func:`distance_block`."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    q, g = _as_features(query, "query"), _as_features(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"feature dims differ: query {q.shape[1]} vs gallery {g.shape[1]}")
    for x, role, names in ((q, "query", query_names), (g, "gallery", gallery_names)):
        if names is not None and len(names) != len(x):
            raise ValueError(f"{role}_names has {len(names)} entries for {len(x)} {role} rows")
        _check_finite(x, role, names)
    dtype = torch.promote_types(q.dtype, g.dtype)
    q, g = q.to(dtype), g.to(dtype)
    if metric == "cosine":
        return F.normalize(q, dim=1), F.normalize(g, dim=1), None
    return q, g, g.square().sum(1)


def distance_block(q: torch.Tensor, g: torch.Tensor, g_sq: torch.Tensor | None) -> torch.Tensor:
    """Distances from rows ``q`` to ``g`` as prepared by :func:`prepare_features`."""
    if g_sq is None:  # cosine on unit vectors
        return torch.addmm(torch.ones((), dtype=q.dtype), q, g.T, alpha=-1.0)
    d2 = torch.addmm(g_sq.unsqueeze(0), q, g.T, alpha=-2.0).add_(q.square().sum(1, keepdim=True))
    return d2.clamp_min_(0).sqrt_()


@torch.no_grad()
def pairwise_distance(query, gallery, metric: str = "euclidean", query_names: Sequence[str] | None = None,
                      gallery_names: Sequence[str] | None = None) -> torch.Tensor:
    """Return the (Q, G) distance matrix between query and gallery features.

    ``euclidean`` is the true (not squared) L2 distance; ``cosine`` is
    ``1 - cos`` on L2-normalised features. Raises ValueError for non 2-D input,
    mismatched feature dims or non-finite features (naming rows / images).
    """
    q, g, g_sq = prepare_features(query, gallery, metric, query_names, gallery_names)
    return distance_block(q, g, g_sq)


@torch.no_grad()
def iter_distance_chunks(query, gallery, metric: str = "euclidean", chunk_size: int = 1024,
                         query_names: Sequence[str] | None = None,
                         gallery_names: Sequence[str] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)`` with ``block = distance(query[start:start + chunk_size], gallery)``.

    Inputs are validated once, before the first block; only one
    ``chunk_size x G`` block is alive at a time.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    q, g, g_sq = prepare_features(query, gallery, metric, query_names, gallery_names)
    for start in range(0, len(q), chunk_size):
        yield start, distance_block(q[start : start + chunk_size], g, g_sq)


@torch.no_grad()
def chunked_topk(query, gallery, k: int, metric: str = "euclidean",
                 chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(distances, indices)`` of the ``k`` nearest gallery items per query, ascending."""
    num_gallery = torch.as_tensor(gallery).shape[0]
    if not 1 <= k <= num_gallery:
        raise ValueError(f"k must be in [1, {num_gallery}], got {k}")
    values, indices = [], []
    for _, block in iter_distance_chunks(query, gallery, metric, chunk_size):
        v, i = torch.topk(block, k, dim=1, largest=False, sorted=True)
        values.append(v)
        indices.append(i)
    if not values:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(values), torch.cat(indices)


def as_numpy(x) -> np.ndarray:
    """Return a numpy view/copy of a tensor or array-like (no dtype change)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
