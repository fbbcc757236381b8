"""Unlabelled images as pseudo identities: which images, and their current cluster ids (data.unlabelled).

The clustering itself runs in ``src.callbacks.pseudo_labels``; this module holds its result, turns clusters into
training records (pid ``PSEUDO_PID_BASE + cluster``) and classifier rows, and saves it in checkpoints.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from src.data.images import drop_unreadable
from src.data.records import DataError, ImageRecord, file_digest, unlabelled_records

PSEUDO_PID_BASE = 1_000_000  # above every Market / course identity


def read_unlabelled(root: Path, folders: list[str], labelled: list[ImageRecord]) -> list[ImageRecord]:
    """The images of ``folders`` (relative to ``root`` or absolute), readable, each content once, none identical to
    a labelled image (so no validation image can join a training cluster)."""
    records = []
    for folder in folders:
        path = Path(folder).expanduser()
        path = path if path.is_absolute() else Path(root) / path
        if not path.is_dir():
            raise DataError(f"{path}: data.unlabelled folder not found")
        try:
            records += unlabelled_records(path)
        except DataError as err:  # e.g. a folder without images
            raise DataError(f"data.unlabelled: {err}") from err
    records = drop_unreadable(records)
    labelled_content = {file_digest(r.path) for r in labelled}
    unique, seen, copies_of_labelled = [], set(), 0
    for record in records:
        digest = file_digest(record.path)
        if digest in labelled_content:
            copies_of_labelled += 1
        elif digest not in seen:
            seen.add(digest)
            unique.append(record)
    if copies_of_labelled:
        warnings.warn(f"data.unlabelled: left out {copies_of_labelled} images identical to labelled ones", stacklevel=2)
    if not unique:
        raise DataError(f"data.unlabelled={folders}: no usable image (all unreadable or copies of labelled images)")
    return unique


def records_digest(records: list[ImageRecord]) -> str:
    return hashlib.sha256("\n".join(str(r.path) for r in records).encode()).hexdigest()


class PseudoLabels:
    """Unlabelled records, their pre-decoded images, and the cluster id of each (-1: outlier, not trained on)."""

    def __init__(self, records: list[ImageRecord], cache: torch.Tensor | None, capacity: int, first_label: int):
        self.all_records, self.cache = records, cache
        self.capacity, self.first_label = capacity, first_label
        self.cluster_ids = np.full(len(records), -1)
        self.attribute_targets: dict[str, torch.Tensor] | None = None  # head -> (clusters, classes) probabilities
        self.round = 0

    @property
    def num_clusters(self) -> int:
        return int(self.cluster_ids.max(initial=-1)) + 1

    def assign(self, cluster_ids, attribute_targets: dict[str, torch.Tensor] | None = None) -> None:
        """A clustering round's result; clusters beyond the classifier's room (``data.max_pseudo_identities``) are
        left out, smallest first."""
        cluster_ids = np.asarray(cluster_ids).copy()
        if len(cluster_ids) != len(self.all_records):
            raise ValueError(f"{len(cluster_ids)} cluster ids for {len(self.all_records)} unlabelled images")
        sizes = np.bincount(cluster_ids[cluster_ids >= 0], minlength=0)
        keep = np.argsort(-sizes, kind="stable")[: self.capacity]
        if len(sizes) > self.capacity:
            warnings.warn(f"{len(sizes)} clusters, room for data.max_pseudo_identities={self.capacity}: "
                          f"the {len(sizes) - self.capacity} smallest are left out", stacklevel=2)
        renumber = np.full(len(sizes) + 1, -1)
        renumber[np.sort(keep)] = np.arange(len(keep))
        self.cluster_ids = renumber[cluster_ids]  # -1 stays -1 (last slot)
        if attribute_targets is not None:
            order = torch.as_tensor(np.sort(keep), dtype=torch.long)
            attribute_targets = {name: t[order] for name, t in attribute_targets.items()}
        self.attribute_targets = attribute_targets
        self.round += 1

    def records(self) -> list[ImageRecord]:
        return [ImageRecord(r.path, PSEUDO_PID_BASE + int(c), r.camid) for r, c in zip(self.all_records, self.cluster_ids) if c >= 0]

    def cache_of_clustered(self) -> torch.Tensor:
        return self.cache[torch.as_tensor(self.cluster_ids >= 0)]

    def pid_to_label(self) -> dict[int, int]:
        return {PSEUDO_PID_BASE + c: self.first_label + c for c in range(self.num_clusters)}

    def soft_attribute_targets(self, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        """(mask of the pseudo-labelled samples, head -> their cluster's mean attribute probabilities), or None."""
        if self.attribute_targets is None:
            return None
        mask = pids >= PSEUDO_PID_BASE
        clusters = (pids[mask] - PSEUDO_PID_BASE).long().cpu()
        return mask, {name: t[clusters] for name, t in self.attribute_targets.items()}

    def state_dict(self) -> dict:
        return {"records_sha256": records_digest(self.all_records), "num_images": len(self.all_records), "round": self.round,
                "cluster_ids": torch.as_tensor(self.cluster_ids), "attribute_targets": self.attribute_targets,
                "folders": sorted({str(r.path.parent) for r in self.all_records})}

    def load_state_dict(self, state: dict) -> None:
        if state["records_sha256"] != records_digest(self.all_records):
            raise DataError(f"data.unlabelled: the images found ({len(self.all_records)}) are not those the checkpoint "
                            f"being resumed clustered ({state['num_images']} in {state['folders']})")
        self.cluster_ids = state["cluster_ids"].numpy().copy()
        self.attribute_targets = state.get("attribute_targets")
        self.round = int(state["round"])
