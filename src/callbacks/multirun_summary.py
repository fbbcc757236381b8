"""Hydra callback: after a multirun, one CSV row per job (its overrides and its optimized metric)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.io.atomic import write_csv

if TYPE_CHECKING:  # pandas loads when a sweep ends, not with every command (Hydra makes this callback at start)
    import pandas as pd

EVAL_COLUMNS = ("mAP", "rank1", "rank5", "mINP", "mean_attribute_accuracy")


def summarise_sweep(sweep_dir: str | Path, metric: str) -> pd.DataFrame:
    """Rows of ``override=value`` columns + ``metric`` for every finished job folder under ``sweep_dir``
    (for ``src.eval`` sweeps: its retrieval and attribute numbers)."""
    import pandas as pd

    rows = []
    for job in sorted(Path(sweep_dir).iterdir(), key=lambda p: (len(p.name), p.name)):
        overrides_file, metrics_file = job / ".hydra" / "overrides.yaml", job / "metrics.json"
        if not overrides_file.is_file():
            continue
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        row = {"job": job.name, **dict(o.split("=", 1) for o in overrides if "=" in o)}
        evaluation = job / "eval_metrics.json"
        if evaluation.is_file():
            result = json.loads(evaluation.read_text())
            row.update({k: result[k] for k in EVAL_COLUMNS if k in result})
        else:
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
            row[metric] = metrics.get(metric)
        rows.append(row)
    return pd.DataFrame(rows)


class MultirunSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        metric = config.get("optimized_metric") or "val/loss"
        sweep_dir = Path(config.hydra.sweep.dir)
        table = summarise_sweep(sweep_dir, metric)
        if not table.empty:
            write_csv(sweep_dir / "summary.csv", table)
            print(f"\nmultirun summary ({sweep_dir / 'summary.csv'}):\n{table.to_string(index=False)}")
