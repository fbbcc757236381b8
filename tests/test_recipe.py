"""The staged recipe (src/recipe.py): budget split, process choice, stage states, and the one command at tiny scale,
killed inside each stage and continued with ckpt_path=last."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.recipe import choose_processes, format_duration, own_overrides, parse_duration, split_budget, stage_state
from tests.conftest import ROOT

TINY = ["data=synthetic", "data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.num_workers=0",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.max_time=00:00:10:00",
        "recipe.processes=1", "torch_threads=1",
        "recipe.release.overrides=['evaluate.data=synthetic','evaluate.overrides=[\"data.source.num_train_ids=24\","
        "\"data.source.num_test_ids=6\",\"data.num_workers=0\"]','evaluate.parity_images=8','torch_threads=1']"]


def test_budget_is_split_by_the_stage_fractions():
    assert split_budget("00:01:55:00", [0.6087, 0.3913]) == ["00:01:10:00", "00:00:45:00"]
    assert parse_duration("01:02:03:04") == ((24 + 2) * 60 + 3) * 60 + 4
    assert format_duration(parse_duration("01:02:03:04")) == "01:02:03:04"
    assert split_budget(None, [0.5, 0.5]) == [None, None]


@pytest.mark.parametrize("budget, fractions, message", [
    ("2 hours", [1.0], "DD:HH:MM:SS"),
    ("00:00:01:00", [0.5, 0.5], "at least a minute"),
    ("00:02:00:00", [0.7, 0.7], "summing to at most 1"),
    ("00:02:00:00", [0.0, 1.0], "positive"),
])
def test_a_budget_that_cannot_be_split_is_refused(budget, fractions, message):
    with pytest.raises(ConfigError, match=message):
        split_budget(budget, fractions)


def test_two_processes_on_two_cores_without_a_gpu():
    assert choose_processes("auto", 2, cuda=False)[0] == 2
    assert choose_processes("auto", 1, cuda=False)[0] == 1
    assert choose_processes("auto", 16, cuda=True) == (1, "a GPU is available")
    assert choose_processes(2, 1, cuda=False)[0] == 2
    with pytest.raises(ConfigError, match="auto, 1 or 2"):
        choose_processes(3, 4, cuda=False)


def test_the_recipe_keeps_the_keys_it_sets_per_stage():
    command = ["experiment=reid_best", "data.root=/d", "trainer.max_time=00:02:00:00", "ckpt_path=last",
               "hydra.run.dir=x", "recipe.processes=1", "+model.init_weights=a.pt", "seed=3"]
    assert own_overrides(command) == ["experiment=reid_best", "data.root=/d", "seed=3"]


def test_stage_states(tmp_path):
    assert stage_state(tmp_path / "missing") == "new"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert stage_state(tmp_path) == "interrupted"
    (tmp_path / "metrics.json").write_text("{}")
    assert stage_state(tmp_path) == "done"


def recipe_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.train", "experiment=reid_best", *TINY, f"hydra.run.dir={run_dir}", *extra]


def run_until(run_dir: Path, marker: Path, *extra: str, timeout: float = 300) -> None:
    """Start the recipe, and kill it (the whole process group, as a lost shell would) once ``marker`` exists."""
    process = subprocess.Popen(recipe_command(run_dir, *extra), cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            assert process.poll() is None, f"the recipe ended (status {process.returncode}) before {marker} existed"
            assert time.monotonic() < deadline, f"no {marker} within {timeout} s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def finish(run_dir: Path, *extra: str) -> str:
    done = subprocess.run(recipe_command(run_dir, *extra), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_one_command_killed_in_each_stage_continues_where_it_stopped(tmp_path):
    run_dir = tmp_path / "run"
    epochs = ["trainer.max_epochs=3", "callbacks.early_stopping.patience=10"]
    # killed in stage 1 after its first checkpoint: stage 1 resumes from it, not from scratch
    run_until(run_dir, run_dir / "labelled" / "checkpoints" / "last.ckpt", *epochs)
    assert stage_state(run_dir / "labelled") == "interrupted"
    # killed in stage 2 after its first checkpoint
    run_until(run_dir, run_dir / "pseudo" / "checkpoints" / "last.ckpt", *epochs, "ckpt_path=last")
    assert stage_state(run_dir / "labelled") == "done"
    assert stage_state(run_dir / "pseudo") == "interrupted"
    stage1 = json.loads((run_dir / "labelled" / "metrics.json").read_text())
    stage1_mtime = (run_dir / "labelled" / "metrics.json").stat().st_mtime_ns
    stage2_config = (run_dir / "pseudo" / "config.yaml").read_text()
    assert f"init_weights: {stage1['best_checkpoint']}" in stage2_config  # found by the code, not typed

    out = finish(run_dir, *epochs, "ckpt_path=last")
    assert "stage labelled: finished earlier" in out and "stage pseudo (resumed)" in out
    assert (run_dir / "labelled" / "metrics.json").stat().st_mtime_ns == stage1_mtime  # stage 1 not redone
    import pandas as pd

    epochs_logged = pd.read_csv(run_dir / "pseudo" / "metrics.csv")["epoch"].dropna().astype(int)
    assert sorted(set(epochs_logged)) == [0, 1, 2]  # the resumed stage went on from its checkpoint to its last epoch
    summary = json.loads((run_dir / "recipe.json").read_text())
    released = Path(summary["release"]["file"])
    assert released == run_dir / "weights" / "strong_reid_128x64.pt" and released.is_file()
    entry = json.loads((run_dir / "weights" / "manifest.json").read_text())["files"][released.name]
    assert entry["training"]["command"].startswith("python -m src.train experiment=reid_best")
    assert entry["val"] == summary["release"]["val"] and 0 <= entry["val"]["mAP"] <= 1
    assert "released " in out and "measured from the file" in out

    again = subprocess.run(recipe_command(run_dir), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds stages labelled, pseudo" in again.stderr
