"""Retrieval post-processing in one place: query expansion, k-reciprocal re-ranking and own-copy exclusion.

Options come from ``conf/postprocess/default.yaml`` (eval, search); the functions are pure (tensors in, tensors out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from src.metrics.distance import pairwise_distance
from src.metrics.query_expansion import query_expansion
from src.metrics.rerank import re_ranking_from_features


def retrieval_distances(query: torch.Tensor, gallery: torch.Tensor, metric: str, postprocess: Mapping | None = None
                        ) -> torch.Tensor:
    """Query->gallery distances, after average query expansion and/or k-reciprocal re-ranking when enabled."""
    postprocess = postprocess or {}
    expansion = postprocess.get("query_expansion") or {}
    if expansion.get("enabled"):
        expand_gallery = bool(expansion.get("expand_gallery", False)) and len(gallery) > 1
        top_k = max(1, min(int(expansion["top_k"]), len(gallery) - expand_gallery))
        query, gallery = query_expansion(query, gallery, top_k=top_k, alpha=expansion["alpha"], expand_gallery=expand_gallery)
    rerank = postprocess.get("rerank") or {}
    if rerank.get("enabled"):
        return re_ranking_from_features(query, gallery, metric, k1=rerank["k1"], k2=rerank["k2"],
                                        lambda_value=rerank["lambda_value"])
    return pairwise_distance(query, gallery, metric)


def own_copy_columns(gallery_hashes: Sequence[str]) -> dict[str, list[int]]:
    """content hash -> gallery columns holding that content (for ``exclude_own_copies``)."""
    columns: dict[str, list[int]] = {}
    for index, digest in enumerate(gallery_hashes):
        columns.setdefault(digest, []).append(index)
    return columns


def exclude_own_copies(block: torch.Tensor, query_hashes: Sequence[str], columns: Mapping[str, list[int]]
                       ) -> tuple[torch.Tensor, list[list[int]]]:
    """Distances of a block of queries with each query's own copies (same content hash) set to +inf: a search never
    reports the query's own file as a match. Returns (block, the excluded columns per query)."""
    excluded = [columns.get(digest, []) for digest in query_hashes]
    if any(excluded):
        block = block.clone()
        for row, copies in enumerate(excluded):
            if copies:
                block[row, torch.tensor(copies)] = float("inf")
    return block, excluded
