"""Attribute predictions -> the course ``annotations_train.csv`` format, and a readable text form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.data.attributes import HEADS, decode_annotations
from src.io.atomic import write_csv


def write_classification_csv(path: Path, names: list[str], labels: np.ndarray) -> Path:
    """``id`` = file name, the rest coded exactly like annotations_train.csv."""
    return write_csv(path, decode_annotations(names, labels))


def readable_rows(names: list[str], labels: np.ndarray, probs: dict[str, np.ndarray] | None = None) -> list[str]:
    """One line per image: ``000001.jpg  age=adult backpack=no ... upcolor=red(0.93)``."""
    lines = []
    for row, name in enumerate(names):
        parts = []
        for head_index, head in enumerate(HEADS):
            cls = int(labels[row, head_index])
            text = f"{head.name}={head.classes[cls]}"
            if probs is not None:
                text += f"({probs[head.name][row, cls]:.2f})"
            parts.append(text)
        lines.append(f"{name}  " + " ".join(parts))
    return lines


def probabilities_frame(names: list[str], probs: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = {"name": pd.Series(names, dtype=object)}  # object: names may hold undecodable bytes
    for head in HEADS:
        for j, cls in enumerate(head.classes):
            columns[f"{head.name}.{cls}"] = probs[head.name][:, j]
    return pd.DataFrame(columns)
