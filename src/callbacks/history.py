"""Metric-vs-epoch plots and tables, drawn from what the CSV logger wrote (``metrics.csv`` in the run folder).

The CSV logger is the run's one record of its metrics: a resumed run's rows are carried over by
``ResumableCSVLogger``, so nothing here keeps a history of its own or stores one in checkpoints.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger

from src.io.atomic import save_figure
from src.io.plots import curve

PREFIXES = ("train/", "val/", "time/")


def epoch_table(metrics_csv: Path, monitor: str) -> pd.DataFrame:
    """One row per validated epoch (``monitor`` logged): the last value the CSV logger wrote in that epoch for every
    train/, val/ and time/ metric, with an ``epoch`` column. Empty when the file or the monitor is missing."""
    if not Path(metrics_csv).is_file():
        return pd.DataFrame()
    table = pd.read_csv(metrics_csv)
    if monitor not in table or "epoch" not in table:
        return pd.DataFrame()
    columns = [c for c in table.columns if c.startswith(PREFIXES)]
    rows = table.groupby("epoch")[columns].last()  # rows logged at different hooks of one epoch: last non-empty value
    rows = rows[rows[monitor].notna()].reset_index()
    rows["epoch"] = rows["epoch"].astype(int)
    return rows


class MetricHistory(pl.Callback):
    """Base of the end-of-fit writers: ``write(history)`` gets the run's per-epoch metrics, read from metrics.csv."""

    def __init__(self, output_dir: str, monitor: str):
        self.output_dir = Path(output_dir)
        self.monitor = monitor

    def frame(self, trainer: pl.Trainer) -> pd.DataFrame:
        csv_loggers = [logger for logger in trainer.loggers if isinstance(logger, CSVLogger)]
        if not csv_loggers:
            if not trainer.fast_dev_run:  # fast_dev_run logs nothing by Lightning's design
                warnings.warn(f"{type(self).__name__}: no plots or tables, they are drawn from the CSV logger's "
                              "metrics.csv (compose logger=csv or logger=tensorboard, which writes both)", stacklevel=2)
            return pd.DataFrame()
        csv_loggers[0].save()  # flush the rows still in memory
        return epoch_table(Path(csv_loggers[0].log_dir) / "metrics.csv", self.monitor)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = self.frame(trainer) if trainer.is_global_zero else pd.DataFrame()
        if not history.empty:
            self.write(history)

    def write(self, history: pd.DataFrame) -> None:
        """The subclass's outputs from the run's per-epoch metrics (rank 0, at the end of fit)."""
        raise NotImplementedError


class MetricCurves(MetricHistory):
    """At the end of fit, one PNG per entry of ``plots``: {file name: {title, ylabel, metrics: {key: label}}}.

    A spec may set ``x`` (a logged metric such as ``time/train_min``, default the epoch) and ``xlabel``.
    """

    def __init__(self, output_dir: str, monitor: str, plots: dict):
        super().__init__(output_dir, monitor)
        self.plots = plots

    def write(self, history: pd.DataFrame) -> None:
        for file_name, spec in self.plots.items():
            if not spec:
                continue
            present = {k: v for k, v in spec["metrics"].items() if k in history}
            x = spec.get("x", "epoch")
            if present and x in history:
                save_figure(self.output_dir / file_name, curve(history, present, spec["title"], spec["ylabel"], spec.get("scale", 1.0),
                                                               x=x, xlabel=spec.get("xlabel")))
