"""Seeded identity-disjoint splits (the report's subdivide_train_val_samples) and the validation protocol."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import torch

from src.data.records import DataError, ImageRecord


def split_by_identity(
    records: list[ImageRecord], val_ratio: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Assign whole identities to train or val; ``round(val_ratio * #ids)`` identities go to val."""
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    pids = sorted({r.pid for r in records})
    num_val = round(val_ratio * len(pids))
    if val_ratio > 0 and not 0 < num_val < len(pids):
        n = len(pids)
        fix = (f"use at least {1 / n:.3g} (1 of {n})" if num_val == 0 else f"use at most {(n - 1) / n:.3g} ({n - 1} of {n})")
        raise DataError(f"data.val_ratio={val_ratio}: round({val_ratio} x {n} identities) = {num_val} leaves "
                        f"{'no validation' if num_val == 0 else 'no training'} identity; {fix}" if n > 1 else
                        f"data.val_ratio={val_ratio}: the data has {n} identity; a split needs at least 2")
    order = torch.randperm(len(pids), generator=torch.Generator().manual_seed(seed)).tolist()
    val_pids = {pids[i] for i in order[:num_val]}
    train = [r for r in records if r.pid not in val_pids]
    val = [r for r in records if r.pid in val_pids]
    return train, val


def split_contract(val_records: list[ImageRecord], val_ratio: float, seed: int) -> dict:
    """What identifies a validation split: its settings and a digest of its sorted identity list."""
    val_ids = sorted({int(r.pid) for r in val_records})
    digest = hashlib.sha256(",".join(map(str, val_ids)).encode()).hexdigest()
    return {"val_ratio": float(val_ratio), "split_seed": int(seed), "num_val_ids": len(val_ids), "val_ids_sha256": digest}


def query_gallery_split(records: list[ImageRecord], seed: int) -> tuple[list[int], list[int]]:
    """Labelled evaluation protocol: one seeded query image per (identity, camera); the rest is gallery.

    Returns indices into ``records``. Cameras with a single image of an identity still give a query;
    the Market protocol then matches it against that identity's images from other cameras.
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[(record.pid, record.camid)].append(index)
    generator = torch.Generator().manual_seed(seed)
    queries = []
    for key in sorted(groups):
        members = groups[key]
        queries.append(members[int(torch.randint(len(members), (1,), generator=generator))])
    query_set = set(queries)
    gallery = [i for i in range(len(records)) if i not in query_set]
    return queries, gallery
