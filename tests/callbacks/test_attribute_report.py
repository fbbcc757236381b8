"""src/callbacks/attribute_report.py: the report's Table 1, per-attribute train/val accuracy at the best epoch."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from src.callbacks.attribute_report import AttributeReport, accuracy_table
from src.data.attributes import HEAD_NAMES


def epoch_row(epoch: int, val_mean: float, train: bool = True) -> dict:
    """Accuracies of one epoch: head i scores ``val_mean + (i - 5.5) / 100`` on val and 0.9 on train."""
    row = {"epoch": epoch, "val/mean_acc": val_mean}
    for i, name in enumerate(HEAD_NAMES):
        row[f"val/acc/{name}"] = val_mean + (i - 5.5) / 100
        if train:
            row[f"train/acc/{name}"] = 0.9
    return row


def test_the_table_lists_every_attribute_in_percent_and_their_mean():
    table = accuracy_table(pd.Series(epoch_row(3, 0.5)))
    assert table["attribute"].tolist() == [*HEAD_NAMES, "mean"]
    assert table["val_acc"].iloc[:12].tolist() == pytest.approx([100 * (0.5 + (i - 5.5) / 100) for i in range(12)])
    assert table["val_acc"].iloc[12] == pytest.approx(50.0) and table["train_acc"].iloc[12] == pytest.approx(90.0)


def test_a_run_without_train_accuracies_gets_empty_train_cells():
    table = accuracy_table(pd.Series(epoch_row(0, 0.5, train=False)))
    assert all(math.isnan(v) for v in table["train_acc"])
    assert table["val_acc"].iloc[12] == pytest.approx(50.0)


def test_the_report_is_written_for_the_best_epoch(tmp_path, capsys):
    history = pd.DataFrame([epoch_row(0, 0.4), epoch_row(1, 0.7), epoch_row(2, 0.6)])
    AttributeReport(str(tmp_path), monitor="val/mean_acc").write(history)
    written = pd.read_csv(tmp_path / "attribute_accuracy.csv")
    assert written["val_acc"].iloc[12] == pytest.approx(70.0)  # epoch 1, rounded to 2 decimals
    assert written["val_acc"].iloc[0] == pytest.approx(round(100 * (0.7 - 0.055), 2))
    assert "best epoch (1)" in capsys.readouterr().out
    assert (tmp_path / "attribute_accuracy.png").stat().st_size > 1000
