"""Per-epoch metric history (kept in checkpoints) and metric-vs-epoch plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from src.io.atomic import save_figure
from src.io.plots import curve


class MetricHistory(pl.Callback):
    """Records every train/ and val/ metric after each validation epoch (after the module logged them)."""

    def __init__(self, output_dir: str, monitor: str):
        self.output_dir = Path(output_dir)
        self.monitor = monitor
        self.history: list[dict] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "val/", "time/"))}
        self.history = [h for h in self.history if h["epoch"] != trainer.current_epoch]
        self.history.append({"epoch": trainer.current_epoch, **metrics})

    def _refresh_train_metrics(self, trainer: pl.Trainer) -> None:
        """Epoch-level train metrics are reduced after validation ends; copy them into that epoch's row."""
        if self.history:
            self.history[-1].update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.history and self.history[-1]["epoch"] == trainer.current_epoch - 1:
            self._refresh_train_metrics(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._refresh_train_metrics(trainer)  # the final epoch's train metrics

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)


class MetricCurves(MetricHistory):
    """At the end of fit, one PNG per entry of ``plots``: {file name: {title, ylabel, metrics: {key: label}}}.

    A spec may set ``x`` (a logged metric such as ``time/train_min``, default the epoch) and ``xlabel``.
    """

    def __init__(self, output_dir: str, monitor: str, plots: dict):
        super().__init__(output_dir, monitor)
        self.plots = plots

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.history or not trainer.is_global_zero:
            return
        history = self.frame()
        for file_name, spec in self.plots.items():
            if not spec:
                continue
            present = {k: v for k, v in spec["metrics"].items() if k in history}
            x = spec.get("x", "epoch")
            if present and x in history:
                save_figure(self.output_dir / file_name, curve(history, present, spec["title"], spec["ylabel"], spec.get("scale", 1.0),
                                                               x=x, xlabel=spec.get("xlabel")))


