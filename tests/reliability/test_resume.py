"""An attribute run killed (SIGKILL) in the middle of an epoch and resumed with ``ckpt_path=last`` ends
exactly where the same run without the interruption ends.

Three real ``python -m src.train task=attributes`` processes on the tiny synthetic dataset:

1. the uninterrupted run (3 epochs of 4 batches);
2. the same command in another run folder, stalled by a test callback after batch 1 of epoch 1 (so
   epoch 0's ``checkpoints/last.ckpt`` exists and two optimizer steps of epoch 1 exist only in memory),
   then killed with SIGKILL: no Python cleanup, nothing of epoch 1 saved;
3. the command of 2 plus ``ckpt_path=last`` (Lightning resolves "last" through the ModelCheckpoint
   callback's dirpath, ``<run>/checkpoints/last.ckpt``), which must restore epoch 0's state and train
   epochs 1-2 only.

The resumed run's metrics.json (every metric, within 1e-6), its final weights and its per-epoch metric
history (read from metrics.csv) must equal the uninterrupted run's. The probe callback (tests/reliability/_resume_probe.py) is
stateless; in runs 1 and 3 it only records which epochs the process trained.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EPOCHS, BATCHES, STALL_EPOCH, STALL_BATCH = 3, 4, 1, 1
COMMON = [
    "task=attributes", "seed=0", "torch_threads=1", "augment=on",  # random augmentation in the loader workers
    "data.source.num_train_ids=24", "data.source.num_test_ids=6",  # the default 2 loader workers
    "data.batch_size=16", "data.eval_batch_size=64", "model.net.backbone.pretrained=false",
    "trainer.deterministic=true", f"trainer.max_epochs={EPOCHS}", f"trainer.limit_train_batches={BATCHES}",
    "predict_test=false", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
    "+callbacks.probe._target_=tests.reliability._resume_probe.TrainingProbe",
]
TIMEOUT_S = 600


def command(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "src.train", *COMMON, f"+callbacks.probe.log_file={run_dir}.probe",
            f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", *extra]


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def finish(run_dir: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command(run_dir, cache, *extra), cwd=ROOT, env=environment(),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def probe_lines(run_dir: Path) -> list[str]:
    """The probe's ``epoch`` and ``stalled`` lines (which epochs the process trained, where it stalled)."""
    return [line for line in all_probe_lines(run_dir) if not line.startswith("clock ")]


def all_probe_lines(run_dir: Path) -> list[str]:
    path = Path(f"{run_dir}.probe")
    return path.read_text().splitlines() if path.exists() else []


def clock_readings(run_dir: Path) -> dict[int, float]:
    """The training clock (seconds) the probe read at the start of each epoch this process trained."""
    return {int(epoch): float(seconds) for _, epoch, seconds in (line.split() for line in all_probe_lines(run_dir)
                                                                  if line.startswith("clock "))}


def clock_state(ckpt: dict) -> dict:
    """The TrainingClock's (Lightning Timer's) state kept in a checkpoint: {'time_elapsed': {'train': s, ...}}."""
    states = [state for key, state in ckpt["callbacks"].items() if key.startswith("TrainingClock")]
    assert len(states) == 1, list(ckpt["callbacks"])
    return states[0]


def kill_mid_epoch(run_dir: Path, cache: Path) -> None:
    """Start the run, wait until it stalls inside epoch STALL_EPOCH, SIGKILL it."""
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")
    process = subprocess.Popen(
        command(run_dir, cache, f"+callbacks.probe.stall_epoch={STALL_EPOCH}", f"+callbacks.probe.stall_batch={STALL_BATCH}"),
        cwd=ROOT, env=environment(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(line.startswith("stalled") for line in probe_lines(run_dir)):
            if process.poll() is not None:
                pytest.fail(f"the run ended (rc {process.returncode}) before the stall point:\n"
                            + (run_dir.parent / f"{run_dir.name}.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail("the run did not reach the stall point in time")
            time.sleep(0.2)
        last = run_dir / "checkpoints" / "last.ckpt"
        assert last.is_file(), "no last.ckpt although epoch 0 is over"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # checkpoints stay safe to load


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    cache = tmp / "cache"
    full, resumed = tmp / "full", tmp / "resumed"
    finish(full, cache)

    kill_mid_epoch(resumed, cache)
    stalled = probe_lines(resumed)[-1].split()
    interrupted = {
        "probe": probe_lines(resumed),
        "stalled_at": tuple(int(v) for v in stalled[1:]),
        "last_ckpt": load(resumed / "checkpoints" / "last.ckpt"),
        "metrics_json_exists": (resumed / "metrics.json").exists(),
    }
    Path(f"{resumed}.probe").unlink()

    result = finish(resumed, cache, "ckpt_path=last")
    return {"full": full, "resumed": resumed, "interrupted": interrupted, "resume_output": result.stdout + result.stderr,
            "resumed_clock": clock_readings(resumed)}


def test_the_kill_landed_mid_epoch_after_a_checkpoint(runs):
    interrupted = runs["interrupted"]
    assert interrupted["probe"][:-1] == [f"epoch {e} {e * BATCHES}" for e in range(STALL_EPOCH + 1)]
    assert interrupted["stalled_at"] == (STALL_EPOCH, STALL_BATCH, STALL_EPOCH * BATCHES + STALL_BATCH + 1)
    assert interrupted["last_ckpt"]["epoch"] == STALL_EPOCH - 1  # the newest checkpoint predates the kill
    assert interrupted["last_ckpt"]["global_step"] == STALL_EPOCH * BATCHES
    assert not interrupted["metrics_json_exists"]


def test_ckpt_path_last_resumes_from_the_checkpoint(runs):
    resumed = runs["resumed"]
    train_log = (resumed / "train.log").read_text() if (resumed / "train.log").exists() else ""
    restored = f"Restoring states from the checkpoint path at {resumed / 'checkpoints' / 'last.ckpt'}"
    assert restored in runs["resume_output"] + train_log
    # the resumed process trained the epochs after the checkpoint only, starting at its global step
    assert probe_lines(resumed) == [f"epoch {e} {e * BATCHES}" for e in range(STALL_EPOCH, EPOCHS)]
    assert probe_lines(runs["full"]) == [f"epoch {e} {e * BATCHES}" for e in range(EPOCHS)]


def test_resumed_run_ends_with_the_uninterrupted_metrics(runs):
    full = json.loads((runs["full"] / "metrics.json").read_text())
    resumed = json.loads((runs["resumed"] / "metrics.json").read_text())
    assert Path(resumed.pop("best_checkpoint")).name == Path(full.pop("best_checkpoint")).name
    assert sorted(resumed) == sorted(full)
    for key in ("val/mean_acc", "train/loss"):  # the headline numbers first, for a clear message
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    different = {k: (full[k], resumed[k]) for k in full if abs(full[k] - resumed[k]) > 1e-6 and not k.startswith("time/")}
    assert not different


def test_the_training_clock_continues_across_the_resume(runs):
    """Time trained before the interruption is counted: checked on recorded values, never on how fast the machine was.

    The checkpoint resumed from holds the clock at the end of epoch 0 (``before`` seconds, > 0). The resumed process
    reads its clock at the start of its first epoch, before it has trained a step: a continued clock reads at least
    ``before`` there (``before`` plus the few milliseconds since ``on_train_start``), a clock that restarted reads those
    milliseconds only. The run's final ``time/train_min`` is later on the same clock.
    """
    before = clock_state(runs["interrupted"]["last_ckpt"])["time_elapsed"]["train"]
    assert before > 0
    readings = runs["resumed_clock"]
    assert sorted(readings) == list(range(STALL_EPOCH, EPOCHS))
    assert readings[STALL_EPOCH] >= before, (readings, before)
    assert readings[EPOCHS - 1] >= readings[STALL_EPOCH]
    final = json.loads((runs["resumed"] / "metrics.json").read_text())["time/train_min"]
    assert final * 60 >= before
    # the last checkpoint of the resumed run keeps the continued clock for a further resume
    assert clock_state(load(runs["resumed"] / "checkpoints" / "last.ckpt"))["time_elapsed"]["train"] >= readings[EPOCHS - 1]


def test_resumed_run_ends_with_the_uninterrupted_weights_and_history(runs):
    full = load(runs["full"] / "checkpoints" / "last.ckpt")
    resumed = load(runs["resumed"] / "checkpoints" / "last.ckpt")
    assert (resumed["epoch"], resumed["global_step"]) == (full["epoch"], full["global_step"]) == (EPOCHS - 1, EPOCHS * BATCHES)
    assert resumed["state_dict"].keys() == full["state_dict"].keys()
    for name, tensor in full["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][name].float(), tensor.float(), atol=1e-6, rtol=0), name
    # the per-epoch history the curves are drawn from (metrics.csv): one row per epoch, the same values
    histories = [history(runs[name]) for name in ("full", "resumed")]
    assert histories[0]["epoch"].tolist() == list(range(EPOCHS))
    assert list(histories[0].columns) == list(histories[1].columns)
    for (_, a), (_, b) in zip(histories[0].iterrows(), histories[1].iterrows(), strict=True):
        same = [k for k in a.index if not k.startswith("time/")]  # wall-clock minutes differ between processes
        assert all(abs(a[k] - b[k]) <= 1e-6 for k in same), (a["epoch"], {k: (a[k], b[k]) for k in same if abs(a[k] - b[k]) > 1e-6})


def history(run_dir: Path):
    from src.callbacks.history import epoch_table

    return epoch_table(run_dir / "metrics.csv", "val/mean_acc")


def csv_epochs(run_dir: Path, column: str) -> dict[int, float]:
    import pandas as pd

    table = pd.read_csv(run_dir / "metrics.csv")
    return dict(table.dropna(subset=[column]).groupby("epoch")[column].last())


# ---- problems these runs once exposed ----


def test_metrics_csv_of_the_resumed_run_has_every_epoch(runs):
    assert sorted(csv_epochs(runs["resumed"], "val/mean_acc")) == list(range(EPOCHS))


def test_history_train_loss_is_that_of_its_own_epoch(runs):
    logged = csv_epochs(runs["full"], "train/loss")  # what the module logged for each epoch
    recorded = dict(zip(history(runs["full"])["epoch"], history(runs["full"])["train/loss"], strict=True))
    assert recorded == pytest.approx(logged, abs=1e-6)


def test_running_best_accuracy_is_in_the_checkpoint(runs):
    checkpoint = runs["interrupted"]["last_ckpt"]  # written after epoch 0
    epoch0 = csv_epochs(runs["full"], "val/mean_acc")[0]  # the same deterministic epoch 0 as the interrupted run
    stored = {k: v for k, v in checkpoint["state_dict"].items() if "val_mean_acc_best" in k}
    assert any(v.numel() == 1 and abs(float(v) - epoch0) <= 1e-6 for v in stored.values()), stored
