"""The report's Table 1: train/val accuracy per attribute at the best epoch, as text, CSV and bar chart."""

from __future__ import annotations

import pandas as pd

from src.callbacks.history import MetricHistory
from src.data.attributes import HEAD_NAMES
from src.io.atomic import save_figure, write_csv
from src.io.plots import accuracy_bars


def accuracy_table(best: pd.Series) -> pd.DataFrame:
    """One history row -> accuracy per attribute plus the mean, in percent."""
    rows = [
        {"attribute": name, "train_acc": 100 * best.get(f"train/acc/{name}", float("nan")), "val_acc": 100 * best[f"val/acc/{name}"]}
        for name in HEAD_NAMES
    ]
    table = pd.DataFrame(rows)
    mean = {"attribute": "mean", "train_acc": table["train_acc"].mean(), "val_acc": table["val_acc"].mean()}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


class AttributeReport(MetricHistory):
    """Writes attribute_accuracy.csv/.png for the epoch with the best ``monitor`` value."""

    def write(self, history: pd.DataFrame) -> None:
        best = history.loc[history[self.monitor].idxmax()]
        table = accuracy_table(best)
        write_csv(self.output_dir / "attribute_accuracy.csv", table.round(2))
        print(f"\nPer-attribute accuracy at the best epoch ({int(best['epoch'])}):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:6.2f}"))
        save_figure(self.output_dir / "attribute_accuracy.png", accuracy_bars(table))


