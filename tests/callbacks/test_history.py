"""The per-epoch history behind the curves and Table 1 is what the CSV logger wrote, one row per validated epoch."""

from __future__ import annotations

import pandas as pd
import pytest
import pytorch_lightning as pl

from src.callbacks.history import MetricCurves, epoch_table


def test_rows_of_one_epoch_merge_and_unvalidated_epochs_drop(tmp_path):
    # what Lightning's CSV logger writes: validation and train-epoch metrics on separate rows of the same epoch
    rows = [
        {"epoch": 0, "step": 3, "val/mean_acc": 0.5, "val/loss": 1.0, "time/train_min": 0.1},
        {"epoch": 0, "step": 3, "train/mean_acc": 0.4, "train/loss": 1.2},
        {"epoch": 1, "step": 7, "val/mean_acc": 0.6, "val/loss": 0.9, "time/train_min": 0.2},
        {"epoch": 1, "step": 7, "train/mean_acc": 0.55, "train/loss": 1.0},
        {"epoch": 2, "step": 11, "train/mean_acc": 0.6, "train/loss": 0.8, "lr-AdamW": 1e-3},  # no validation
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    table = epoch_table(tmp_path / "metrics.csv", "val/mean_acc")
    assert table["epoch"].tolist() == [0, 1]
    assert table["train/loss"].tolist() == [1.2, 1.0] and table["val/mean_acc"].tolist() == [0.5, 0.6]
    assert "step" not in table and "lr-AdamW" not in table
    assert epoch_table(tmp_path / "metrics.csv", "val/mAP").empty
    assert epoch_table(tmp_path / "absent.csv", "val/mean_acc").empty


def test_without_a_csv_logger_it_says_why_there_are_no_curves(tmp_path):
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    plots = {"loss_curve.png": {"title": "t", "ylabel": "l", "metrics": {"train/loss": "train"}}}
    curves = MetricCurves(str(tmp_path), "val/mean_acc", plots)
    with pytest.warns(UserWarning, match="metrics.csv"):
        curves.on_fit_end(trainer, None)
    assert not list(tmp_path.iterdir())


def test_curves_and_checkpoints_of_a_run(make_cfg, tmp_path):
    """Two epochs with TensorBoard beside the CSV logger: the curves come from metrics.csv, checkpoints keep no copy."""
    import torch

    from src.train import train
    from tests.conftest import SMALL_DATA

    small = [o for o in SMALL_DATA if not o.startswith("logger=")]
    train(make_cfg(["task=attributes", *small, "logger=tensorboard", "trainer.max_epochs=2", "trainer.limit_train_batches=1",
                    "trainer.limit_val_batches=1", "predict_test=false", "trainer.enable_progress_bar=false",
                    "~callbacks.progress_bar"]))
    run = tmp_path / "run"
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert epoch_table(run / "metrics.csv", "val/mean_acc")["epoch"].tolist() == [0, 1]
    for name in ("accuracy_curve.png", "loss_curve.png", "attribute_accuracy.png", "attribute_accuracy.csv"):
        assert (run / name).stat().st_size > 0, name
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("history" in state for state in ckpt["callbacks"].values() if isinstance(state, dict))
