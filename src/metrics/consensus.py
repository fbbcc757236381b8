"""Attribute consensus over re-ID neighbours: a person looks the same in their other pictures.

Each image's attribute probabilities are averaged with those of its ``k`` nearest images in a re-ID
embedding space (self + k neighbours, equal weights). Images of the same person then vote together,
which removes per-image mistakes (pose, occlusion, a bag hidden on one side); it cannot fix a mistake
the model makes on every picture of a person. Transductive: it needs the other images of the set.
Measured in README "Results" (course data, val split).
"""

from __future__ import annotations

import torch

from src.errors import ConfigError

from .distance import iter_distance_chunks
from .rerank import re_ranking_from_features


@torch.no_grad()
def neighbour_indices(embeddings: torch.Tensor, k: int, metric: str = "euclidean", chunk_size: int = 1024,
                      rerank: bool = False) -> torch.Tensor:
    """(N, k) indices of each row's ``k`` nearest other rows, nearest first (memory: one chunk x N block).

    ``rerank``: by k-reciprocal re-ranked distance (src/metrics/rerank.py, default parameters), whose
    neighbours are more often the same person; it holds the N x N distances (4 N^2 bytes).
    """
    num = len(embeddings)
    if not 1 <= k < num:
        raise ValueError(f"consensus k must be in [1, {num - 1}] for {num} images, got {k}")
    indices = []
    if rerank:
        reranked = re_ranking_from_features(embeddings, embeddings, metric)
        chunks = ((start, reranked[start:start + chunk_size]) for start in range(0, num, chunk_size))
    else:
        chunks = iter_distance_chunks(embeddings, embeddings, metric, chunk_size)
    for start, block in chunks:
        rows = torch.arange(start, start + len(block))
        block[torch.arange(len(block)), rows] = float("inf")  # never one's own neighbour
        indices.append(torch.topk(block, k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(indices)


@torch.no_grad()
def check_consensus_k(k: int, num_images: int, embeds: bool, ckpt_path, images: str) -> None:
    """``attributes.consensus_k`` against the checkpoint and the data, before any image is decoded: the checkpoint
    must embed (re-ID) and each image needs ``k`` other images to be its neighbours."""
    if k and not embeds:
        raise ConfigError(f"{ckpt_path}: attributes.consensus_k needs re-ID embeddings; pass a task=reid or "
                          "task=reid_strong checkpoint (it holds the attribute heads too) or set attributes.consensus_k=0")
    if k >= num_images:
        raise ConfigError(f"attributes.consensus_k={k}: needs more images than the {num_images} of {images}; use "
                          f"attributes.consensus_k <= {max(num_images - 1, 0)} (0 turns the consensus off)")


def neighbour_consensus(embeddings: torch.Tensor, probabilities: dict[str, torch.Tensor], k: int,
                        metric: str = "euclidean", chunk_size: int = 1024, rerank: bool = False) -> dict[str, torch.Tensor]:
    """Per head: the mean of each image's probabilities and those of its ``k`` nearest neighbours."""
    if k == 0:
        return probabilities
    for name, probs in probabilities.items():
        if len(probs) != len(embeddings):
            raise ValueError(f"{name}: {len(probs)} probability rows for {len(embeddings)} embeddings")
    neighbours = neighbour_indices(embeddings, k, metric, chunk_size, rerank)
    return {name: (probs + probs[neighbours].sum(1)) / (k + 1) for name, probs in probabilities.items()}
