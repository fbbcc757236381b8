"""Helpers shared by the data tests: tiny image files, a tiny course-layout folder, records of given identities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from src.data.attributes import CSV_COLUMNS
from src.data.records import ImageRecord


def write_image(path: Path, mode: str = "RGB", size=(64, 128)) -> Path:
    """A random image of ``size`` (width, height) saved at ``path`` (format from the suffix)."""
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    array = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(array)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_course(root: Path, pids=(1, 2, 3, 4), per_id: int = 3) -> Path:
    """A course-layout folder: ``per_id`` training images per identity, their annotations, one test and query image."""
    rows = []
    for pid in pids:
        for k in range(per_id):
            write_image(root / "train" / f"{pid:04d}_c{k % 6 + 1}_{k:09d}.jpg")
        row = {c: 1 for c in CSV_COLUMNS}
        row.update(id=pid, age=2, upred=2)
        rows.append(row)
    header = ",".join(CSV_COLUMNS)
    lines = [",".join(str(r[c]) for c in CSV_COLUMNS) for r in rows]
    (root / "annotations_train.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    for folder in ("test", "queries"):
        write_image(root / folder / "000000.jpg")
    return root


def identity_records(counts: dict[int, int]) -> list[ImageRecord]:
    """``counts[pid]`` records per identity, on cameras 1..6 in turn (no files behind them)."""
    return [ImageRecord(Path(f"{pid:04d}_c{k % 6 + 1}_{k}.jpg"), pid, k % 6 + 1, (0,) * 12)
            for pid, n in counts.items() for k in range(n)]
