"""torch_threads: a number, or auto = the cores free at start; OpenMP waits passively."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from src.runtime import free_cores, resolve_threads, usable_cores


def test_explicit_thread_counts_and_bad_values():
    assert resolve_threads(1) == 1 and resolve_threads("2") == 2
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(ValueError, match="torch_threads=.*positive whole number or auto"):
            resolve_threads(bad)
    cores = __import__("os").cpu_count()
    assert resolve_threads(4 * cores) == 4 * cores
    with pytest.raises(ValueError, match=f"torch_threads={40 * cores}: far above the {cores} cores"):
        resolve_threads(40 * cores)


def test_auto_leaves_out_a_busy_core():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = free_cores(window_s=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert 1 <= busy <= max(1, usable_cores() - 1)
    assert 1 <= resolve_threads("auto") <= usable_cores()


def test_openmp_waits_passively_in_every_entry_point():
    code = "import os, src, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"


def test_a_normal_run_prints_no_library_noise(make_cfg, recwarn, caplog, tmp_path):
    import logging

    from src.train import train
    from tests.conftest import SMALL_DATA

    caplog.set_level(logging.INFO)
    train(make_cfg(["task=reid_strong", *SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                    "data.height=64", "data.width=32", "predict_test=false"]))
    messages = [str(w.message) for w in recwarn]
    for noise in ("exists and is not empty", "LeafSpec", "in eval mode at the start of training"):
        assert not any(noise in m for m in messages), (noise, messages)
    assert not any("Tip" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_index_info_leaves_no_run_folder(tmp_path):
    import os

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "src.index", "info", "index=missing.pt"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "missing.pt" in result.stderr
    assert list(tmp_path.iterdir()) == []
