"""The budget schedule: warm-up and decays at fractions of trainer.max_time (or max_epochs), read from the run's
Timer, under a real Trainer whose clock is simulated so that two machine speeds run in a second."""

from __future__ import annotations

import types

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.callbacks.training_clock import TrainingClock
from src.models.base import MarketModule
from src.models.schedules import BudgetSchedule

SCHEDULE = {"_target_": "src.models.schedules.BudgetSchedule", "_partial_": True,
            "warmup": 0.1, "decays": [0.5, 0.8], "gamma": 0.1}


class TinyModule(MarketModule):
    def __init__(self):
        super().__init__()
        self.save_hyperparameters({"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
                                   "scheduler": SCHEDULE})
        self.net = torch.nn.Linear(4, 1)
        self.rates: list[float] = []

    def on_save_checkpoint(self, checkpoint):  # no backbone: no network contract
        pass

    def training_step(self, batch, batch_idx):
        self.rates.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return self.net(batch[0]).pow(2).mean()


class SimulatedMachine(pl.Callback):
    """Each training step costs ``seconds_per_step`` of a fake monotonic clock that the Timer reads."""

    def __init__(self, seconds_per_step: float, monkeypatch):
        self.now = 1000.0
        self.seconds_per_step = seconds_per_step
        monkeypatch.setattr("pytorch_lightning.callbacks.timer.time", types.SimpleNamespace(monotonic=lambda: self.now))

    def on_train_batch_end(self, *args, **kwargs):
        self.now += self.seconds_per_step


def fit(tmp_path, monkeypatch, seconds_per_step: float | None, max_time: str | None = "00:00:01:40", max_epochs: int = 1000):
    callbacks = [TrainingClock(duration=max_time)]
    if seconds_per_step is not None:
        callbacks.append(SimulatedMachine(seconds_per_step, monkeypatch))
    trainer = pl.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=tmp_path, accelerator="cpu")
    model = TinyModule()
    data = DataLoader(TensorDataset(torch.randn(40, 4)), batch_size=10)  # 4 steps an epoch
    trainer.fit(model, train_dataloaders=data)
    return trainer, model


def decay_points(trainer) -> dict[str, dict]:
    return {entry["phase"]: entry for entry in trainer.lr_scheduler_configs[0].scheduler.followed}


def test_two_machine_speeds_decay_at_the_same_fraction_of_their_time_budget(tmp_path, monkeypatch):
    fast, fast_model = fit(tmp_path / "fast", monkeypatch, seconds_per_step=0.5)  # 200 steps in the 100 s budget
    slow, slow_model = fit(tmp_path / "slow", monkeypatch, seconds_per_step=2.0)  # 50 steps
    fast_points, slow_points = decay_points(fast), decay_points(slow)
    print({name: (fast_points[name]["step"], slow_points[name]["step"]) for name in fast_points})
    for name, fraction in (("decay 1", 0.5), ("decay 2", 0.8)):
        # each decay happens at the first step at or past its fraction: within one step of it on either machine
        assert fraction <= fast_points[name]["progress"] <= fraction + 0.5 / 100
        assert fraction <= slow_points[name]["progress"] <= fraction + 2.0 / 100
        assert fast_points[name]["step"] == pytest.approx(4 * slow_points[name]["step"], abs=4)
    # the rate itself: warm-up from 0.01, full rate, then x0.1 twice, on both machines
    for model in (fast_model, slow_model):
        assert model.rates[0] == pytest.approx(0.01) and max(model.rates) == pytest.approx(0.1)
        assert model.rates[-1] == pytest.approx(0.001)
    assert len(fast_model.rates) == pytest.approx(4 * len(slow_model.rates), abs=4)


def test_without_a_time_budget_the_epochs_set_the_pace(tmp_path, monkeypatch):
    trainer, model = fit(tmp_path, monkeypatch, seconds_per_step=None, max_time=None, max_epochs=10)  # 40 steps
    points = decay_points(trainer)
    assert points["decay 1"]["step"] == 20 and points["decay 1"]["epoch"] == 5.0
    assert points["decay 2"]["step"] == 32 and points["decay 2"]["epoch"] == 8.0
    assert model.rates[-1] == pytest.approx(0.001)


def test_the_checkpoint_records_the_schedule_it_followed_and_resumes_it(tmp_path, monkeypatch):
    trainer, _ = fit(tmp_path, monkeypatch, seconds_per_step=None, max_time=None, max_epochs=10)
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    state = torch.load(tmp_path / "run.ckpt", weights_only=False)["lr_schedulers"][0]
    assert [entry["phase"] for entry in state["followed"]] == ["warm-up", "decay 0", "decay 1", "decay 2"]
    assert state["decays"] == [0.5, 0.8] and "trainer" not in state
    resumed = BudgetSchedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0), warmup=0.1, decays=[0.5, 0.8])
    resumed.load_state_dict(state)
    assert resumed.followed == state["followed"]


@pytest.mark.parametrize("options", [{"decays": [0.8, 0.5]}, {"decays": [1.5]}, {"warmup": 0.6, "decays": [0.5]}])
def test_fractions_outside_the_budget_are_refused(options):
    with pytest.raises(ValueError, match="fractions of the budget"):
        BudgetSchedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0), **options)
