"""The report's distance-threshold sweep on the validation split; the chosen threshold goes into the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from src.io.atomic import save_figure, write_csv
from src.io.plots import sweep_plot
from src.metrics.threshold import best_threshold, threshold_sweep


class ThresholdSweep(pl.Callback):
    """After each validation: sweep thresholds, set ``pl_module.threshold``; at the end write the best epoch's table."""

    def __init__(self, output_dir: str, start: float = 1.0, stop: float = 15.0, step: float = 0.1,
                 objective: str = "map", monitor: str = "val/mAP"):
        self.output_dir = Path(output_dir)
        self.thresholds = np.round(np.arange(start, stop + step / 2, step), 6)
        self.objective, self.monitor = objective, monitor
        self.best_score = -np.inf
        self.best_table: pd.DataFrame | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        retrieval = getattr(pl_module, "val_retrieval", None)
        if trainer.sanity_checking or retrieval is None:
            return
        table = threshold_sweep(retrieval["distmat"], retrieval["q_pids"], retrieval["g_pids"],
                                retrieval["q_camids"], retrieval["g_camids"], thresholds=self.thresholds)
        chosen = best_threshold(table, self.objective)
        pl_module.threshold.fill_(chosen)
        score = float(trainer.callback_metrics.get(self.monitor, torch.tensor(-np.inf)))
        if score > self.best_score:
            self.best_score, self.best_table = score, table.assign(chosen=table["threshold"] == chosen)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_table is None or not trainer.is_global_zero:
            return
        write_csv(self.output_dir / "threshold_sweep.csv", self.best_table.round(6))
        row = self.best_table.loc[self.best_table["chosen"]].iloc[0]
        print(f"\nthreshold sweep ({self.objective}): t={row['threshold']:g} mAP={100 * row['mAP']:.2f}% "
              f"precision={100 * row['precision']:.2f}% recall={100 * row['recall']:.2f}% F1={100 * row['f1']:.2f}%")
        save_figure(self.output_dir / "threshold_sweep.png", sweep_plot(self.best_table, self.objective))


