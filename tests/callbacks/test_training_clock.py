"""src/callbacks/training_clock.py: the fit's wall-clock time logged as ``time/train_min`` at each validation,
continued across a resume, and ``trainer.max_time`` as its limit."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from pytorch_lightning.trainer.states import RunningStage

from src.callbacks.training_clock import TrainingClock


def fake_run(sanity_checking: bool = False):
    logged = {}
    module = SimpleNamespace(log=lambda name, value, **kwargs: logged.update({name: (value, kwargs)}))
    return SimpleNamespace(sanity_checking=sanity_checking), module, logged


def started(clock: TrainingClock, seconds_ago: float) -> TrainingClock:
    clock.on_train_start(None, None)
    clock._start_time[RunningStage.TRAINING] = time.monotonic() - seconds_ago
    return clock


def test_nothing_is_logged_before_training_starts_nor_in_the_sanity_check():
    clock = TrainingClock()
    trainer, module, logged = fake_run()
    clock.on_validation_epoch_end(trainer, module)  # the sanity check runs before training starts
    started(clock, 60)
    clock.on_validation_epoch_end(fake_run(sanity_checking=True)[0], module)
    assert logged == {}


def test_minutes_since_the_start_of_training_are_logged_on_every_rank():
    clock = started(TrainingClock(), seconds_ago=90)
    trainer, module, logged = fake_run()
    clock.on_validation_epoch_end(trainer, module)
    minutes, options = logged["time/train_min"]
    assert minutes == pytest.approx(1.5, abs=0.01) and options == {"sync_dist": True}


def test_a_resumed_run_continues_the_clock_of_its_checkpoint():
    state = started(TrainingClock(), seconds_ago=600).state_dict()
    resumed = TrainingClock()
    resumed.load_state_dict(state)
    started(resumed, seconds_ago=30)
    trainer, module, logged = fake_run()
    resumed.on_validation_epoch_end(trainer, module)
    assert logged["time/train_min"][0] == pytest.approx(10.5, abs=0.01)


def test_a_duration_is_the_time_limit_and_its_absence_none():
    limited = TrainingClock("00:01:30:00")
    assert limited.time_remaining() == pytest.approx(90 * 60) and limited._verbose
    unlimited = TrainingClock()
    assert unlimited.time_remaining() is None and not unlimited._verbose
