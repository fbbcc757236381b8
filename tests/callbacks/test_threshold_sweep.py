"""src/callbacks/threshold_sweep.py: after each validation the module's threshold is the one the sweep chose; the
best epoch's sweep is written as threshold_sweep.csv/.png at the end of fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from src.callbacks.threshold_sweep import ThresholdSweep


def retrieval(positive_distances: tuple[float, float]) -> dict:
    """Two queries (identities 1 and 2, camera 1), each with one match in the gallery (camera 2) at the given
    distance and one non-match at distance 9."""
    a, b = positive_distances
    return {"distmat": torch.tensor([[a, 9.0], [9.0, b]]), "q_pids": np.array([1, 2]), "g_pids": np.array([1, 2]),
            "q_camids": np.array([1, 1]), "g_camids": np.array([2, 2])}


def fake_run(score: float | None, positives=(2.0, 3.0), sanity_checking=False):
    metrics = {} if score is None else {"val/mAP": torch.tensor(score)}
    trainer = SimpleNamespace(sanity_checking=sanity_checking, callback_metrics=metrics, is_global_zero=True)
    return trainer, SimpleNamespace(val_retrieval=retrieval(positives), threshold=torch.tensor(float("nan")))


def test_the_chosen_threshold_is_the_smallest_that_returns_every_match(tmp_path):
    # distances < t are returned: with t = 3.5 both matches (2 and 3) are in, both non-matches (9) out
    sweep = ThresholdSweep(str(tmp_path), start=1.0, stop=6.0, step=0.5)
    trainer, module = fake_run(0.4)
    sweep.on_validation_end(trainer, module)
    assert module.threshold.item() == 3.5
    chosen = sweep.best_table.loc[sweep.best_table["chosen"]]
    assert chosen["threshold"].tolist() == [3.5] and chosen["mAP"].item() == pytest.approx(1.0)
    below = sweep.best_table.set_index("threshold").loc[3.0]  # only the first query's match: AP 1 and 0
    assert below["mAP"] == pytest.approx(0.5) and below["recall"] == pytest.approx(0.5)


def test_every_validation_sets_the_threshold_but_the_table_kept_is_the_best_epochs(tmp_path):
    sweep = ThresholdSweep(str(tmp_path), start=1.0, stop=6.0, step=0.5)
    trainer, module = fake_run(0.4)
    sweep.on_validation_end(trainer, module)
    later, module_later = fake_run(0.3, positives=(4.2, 5.2))  # a worse epoch whose matches lie further away
    module_later.threshold = module.threshold
    sweep.on_validation_end(later, module_later)
    assert module.threshold.item() == 5.5
    assert sweep.best_score == pytest.approx(0.4) and sweep.best_table.loc[sweep.best_table["chosen"], "threshold"].item() == 3.5


def test_the_sanity_check_and_runs_without_retrieval_are_ignored(tmp_path):
    sweep = ThresholdSweep(str(tmp_path))
    trainer, module = fake_run(0.9, sanity_checking=True)
    sweep.on_validation_end(trainer, module)
    sweep.on_validation_end(fake_run(0.9)[0], SimpleNamespace(threshold=torch.tensor(1.0)))  # no val_retrieval
    assert sweep.best_table is None and torch.isnan(module.threshold)
    sweep.on_fit_end(trainer, module)
    assert not list(tmp_path.iterdir())


def test_the_best_table_is_written_on_rank_zero_only(tmp_path):
    sweep = ThresholdSweep(str(tmp_path / "run"), start=1.0, stop=6.0, step=0.5, objective="f1")
    trainer, module = fake_run(0.4)
    sweep.on_validation_end(trainer, module)
    trainer.is_global_zero = False
    sweep.on_fit_end(trainer, module)
    assert not (tmp_path / "run").exists()
    trainer.is_global_zero = True
    sweep.on_fit_end(trainer, module)
    table = pd.read_csv(tmp_path / "run" / "threshold_sweep.csv")
    assert table["threshold"].tolist() == list(np.arange(1.0, 6.01, 0.5))
    assert table.loc[table["chosen"], "threshold"].tolist() == [3.5]  # F1 = 1 from 3.5 to 9: the smallest wins
    assert (tmp_path / "run" / "threshold_sweep.png").stat().st_size > 1000
