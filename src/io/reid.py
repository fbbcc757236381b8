"""The course re-ID output: ``reid_test.txt``, one line per query, matches within the threshold."""

from __future__ import annotations

from pathlib import Path

import torch

from src.io.atomic import write_text
from src.metrics.distance import iter_distance_chunks
from src.metrics.postprocess import exclude_own_copies, own_copy_columns
from src.metrics.threshold import retrieve_within


def reid_lines(query_features, gallery_features, query_names, gallery_names, threshold: float, *,
               metric: str = "euclidean", query_hashes=None, gallery_hashes=None, chunk_size: int = 512) -> list[str]:
    """``query.jpg: g1.jpg, g2.jpg, ...`` by ascending distance, only gallery images closer than ``threshold``.

    Gallery files whose content hash equals the query's (its own copy in test/) are never reported.
    """
    if len(query_names) == 0:
        raise ValueError("empty query set: no query images to search for")
    columns = own_copy_columns(gallery_hashes or [])
    lines = []
    for start, block in iter_distance_chunks(query_features, gallery_features, metric, chunk_size, query_names, gallery_names):
        if query_hashes is not None:
            block, _ = exclude_own_copies(torch.as_tensor(block), query_hashes[start:start + len(block)], columns)
        for offset, row in enumerate(block):
            q = start + offset
            matches = retrieve_within(row, threshold)
            lines.append(f"{query_names[q]}: " + ", ".join(gallery_names[i] for i in matches))
    return lines


def write_reid_txt(path: str | Path, lines: list[str]) -> Path:
    return write_text(path, "\n".join(lines) + "\n")
