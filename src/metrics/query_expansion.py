"""Alpha query expansion (alpha-QE, Radenovic et al. 2018) and database-side augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distance import prepare_features


def _expand(x: torch.Tensor, gallery: torch.Tensor, top_k: int, alpha: float, include_self: bool,
            chunk_size: int) -> torch.Tensor:
    """``normalise(sum_i sim_i^alpha * neighbour_i)`` over the top-k gallery neighbours of each row of ``x``.

    Rows of ``x`` and ``gallery`` are unit vectors. With ``include_self`` the row
    itself is added with weight 1 (its self-similarity), as in alpha-QE.
    """
    out = torch.empty_like(x)
    for s in range(0, len(x), chunk_size):
        rows = x[s : s + chunk_size]
        sim, idx = torch.topk(rows @ gallery.T, top_k, dim=1)
        weights = sim.clamp_min(0).pow(alpha)  # alpha = 0 -> plain average
        expanded = torch.einsum("qk,qkd->qd", weights, gallery[idx])
        out[s : s + chunk_size] = F.normalize(expanded + rows if include_self else expanded, dim=1)
    return out


@torch.no_grad()
def query_expansion(qf, gf, top_k: int = 5, alpha: float = 3.0, expand_gallery: bool = False,
                    chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(new_qf, new_gf)``, both L2-normalised, for cosine / euclidean retrieval.

    Each query becomes ``q + sum_{i<=top_k} max(cos(q, g_i), 0)^alpha * g_i``
    (then normalised) over its ``top_k`` most similar gallery features;
    ``alpha=0`` is average query expansion. With ``expand_gallery=True`` the
    gallery is first augmented the same way from its own top ``top_k + 1``
    neighbours (itself included; database-side augmentation) and the queries are
    expanded against the augmented gallery; otherwise ``new_gf`` is just ``gf``
    normalised.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    q, g, _ = prepare_features(qf, gf, "cosine")  # validates and L2-normalises
    if top_k + expand_gallery > len(g):
        raise ValueError(f"top_k={top_k} is too large for a gallery of {len(g)} images")
    if expand_gallery:
        g = _expand(g, g, top_k + 1, alpha, include_self=False, chunk_size=chunk_size)
    return _expand(q, g, top_k, alpha, include_self=True, chunk_size=chunk_size), g
