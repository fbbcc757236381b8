"""A CSV logger that keeps the rows of the run it resumes (Lightning's deletes metrics.csv on start)."""

from __future__ import annotations

import csv
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger


class ResumableCSVLogger(CSVLogger):
    """Like CSVLogger, but an existing ``metrics.csv`` in the run folder (``ckpt_path=last``) is carried over."""

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        previous = []
        if path.is_file():
            with open(path, newline="") as handle:
                previous = [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
        writer = super().experiment  # creates the writer, which removes the old file (a dummy on ranks > 0)
        if isinstance(getattr(writer, "metrics", None), list):
            writer.metrics[:0] = previous
        return writer
