"""src/loggers.py: a CSV logger whose ``metrics.csv`` keeps the rows of the run it resumes (Lightning's own removes
the file when it starts)."""

from __future__ import annotations

import warnings

import pandas as pd

from src.loggers import ResumableCSVLogger


def logger_in(folder) -> ResumableCSVLogger:
    return ResumableCSVLogger(save_dir=str(folder), name="", version="")


def test_a_resumed_run_keeps_its_earlier_rows_and_appends_new_ones(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss,val/mAP\n0,9,,0.5\n1,19,1.25,\n")
    logger = logger_in(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning warns that the folder is not empty
        logger.log_metrics({"epoch": 2, "val/mAP": 0.625, "time/train_min": 3.0}, step=29)
        logger.save()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["step"].tolist() == [9, 19, 29] and table["epoch"].tolist() == [0, 1, 2]
    assert table["val/mAP"].tolist()[0::2] == [0.5, 0.625] and pd.isna(table["val/mAP"][1])  # empty cells stay empty
    assert table["train/loss"][1] == 1.25 and pd.isna(table["time/train_min"][0]) and table["time/train_min"][2] == 3.0


def test_a_new_run_starts_an_empty_table(tmp_path):
    logger = logger_in(tmp_path)
    logger.log_metrics({"val/mAP": 0.25}, step=4)
    logger.save()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["step"].tolist() == [4] and table["val/mAP"].tolist() == [0.25]


def test_the_earlier_rows_are_carried_over_once(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,val/mAP\n9,0.5\n")
    logger = logger_in(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert logger.experiment is logger.experiment  # the second access reuses the writer
        logger.log_metrics({"val/mAP": 0.75}, step=19)
        logger.save()
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].tolist() == [9, 19]
