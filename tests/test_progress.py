"""src/progress.py: a long pass logs the time left once, after its first batches; durations read as words."""

from __future__ import annotations

import logging

import pytest

import src.progress


def test_a_long_pass_logs_the_time_left_after_its_first_batches(monkeypatch, caplog):
    clock = iter([100.0, 106.0])  # end of batch 0 (start-up and compilation paid), end of batch 3: 2 s per batch
    monkeypatch.setattr(src.progress, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="src.progress")
    assert list(src.progress.with_progress(range(200), "embedding gallery")) == list(range(200))
    assert [r.getMessage() for r in caplog.records] == [
        "embedding gallery: about 7 min left (196 of 200 batches to go, 2.0 s per batch)"]

    caplog.clear()
    monkeypatch.setattr(src.progress, "monotonic", lambda: 0.0)
    assert list(src.progress.with_progress(range(4), "short")) == list(range(4))  # nothing left to estimate
    assert caplog.records == []
    assert [src.progress.duration(s) for s in (42, 420, 3900)] == ["42 s", "7 min", "1 h 05 min"]


def test_a_pass_of_unknown_length_yields_everything_and_estimates_nothing(monkeypatch, caplog):
    monkeypatch.setattr(src.progress, "monotonic", lambda: 0.0)
    caplog.set_level(logging.INFO, logger="src.progress")
    assert list(src.progress.with_progress(iter(range(10)), "stream")) == list(range(10))
    assert caplog.records == []
    caplog.clear()
    clock = iter([0.0, 30.0])  # given the total: 10 s per batch, 6 batches left after batch 3
    monkeypatch.setattr(src.progress, "monotonic", lambda: next(clock))
    list(src.progress.with_progress(iter(range(10)), "stream", total=10))
    assert [r.getMessage() for r in caplog.records] == ["stream: about 60 s left (6 of 10 batches to go, 10.0 s per batch)"]


@pytest.mark.parametrize("seconds, words", [(0, "0 s"), (89, "89 s"), (90, "2 min"), (3569, "59 min"), (3570, "1 h 00 min"),
                                            (2 * 3600 + 7 * 60, "2 h 07 min")])
def test_durations_switch_units_at_90_seconds_and_at_the_hour(seconds, words):
    assert src.progress.duration(seconds) == words
