"""Smoke tests: every benchmark script runs end to end in --small mode and prints its table (no timing asserted).

The script runs are ``slow``: CI runs them as its second step (.ci/run), which keeps the default run (the README's test
command) under 10 minutes on two cores. The helpers the benchmarks share are tested here in the default run."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
REFERENCE_SCRIPTS = ["bench_rank.py", "bench_rerank.py", "bench_large_gallery.py"]
OWN_SCRIPTS = {
    "bench_stage2_epoch.py": "| cached 543-d descriptors |",
    "bench_lightning_overhead.py": "| Lightning (AttributeModule + Trainer) |",
    "bench_inference.py": "| float32 channels_last |",
    "bench_data_pipeline.py": "| model training step (lite0) |",
    "bench_attribute_consensus.py": "| + flip + consensus k=4 re-ranked |",
    "bench_bot_reference.py": "| plain BoT reference | 3 | 48 |",
    "bench_training_variants.py": "| frozen stages 2 (stem + blocks 0-1) | `model.net.backbone.frozen_stages=2` |",
    "bench_startup.py": "| src.search torch_threads=0 |",
    "bench_sync_batchnorm.py": "| global batch (trainer=ddp default) |",
}

# where the other benchmarks with a --small mode are smoke-tested
SMOKED_ELSEWHERE = {
    "bench_pseudo_labels.py": "tests/test_readme_commands.py, with the README's k1 / eps grid",
    "bench_description_search.py": "tests/bench/test_serving_benches.py",
    "bench_serve_load.py": "tests/bench/test_serving_benches.py",
    "bench_faiss_index.py": "tests/bench/test_bench_faiss.py",
    "bench_threads.py": "test_thread_settings_bench_small below",
    "bench_ddp.py": "test_ddp_bench_small below",
}


def test_every_benchmark_with_a_small_mode_is_smoke_tested():
    scripts = {p.name for p in BENCH.glob("bench_*.py") if "--small" in p.read_text()}
    assert scripts - set(REFERENCE_SCRIPTS) - set(OWN_SCRIPTS) - set(SMOKED_ELSEWHERE) == set()


@pytest.mark.slow
def test_ddp_bench_small():  # the DDP training path itself is in the default run (tests/reliability/test_ddp.py, README)
    assert "| DDP 2 processes x 1 thread |" in run_small("bench_ddp.py")


@pytest.mark.slow
def test_thread_settings_bench_small():
    out = run_small("bench_threads.py")
    rows = [line for line in out.splitlines() if line.startswith(("| idle", "| one busy core"))]
    assert len(rows) == 8, out


def run_small(script: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--small"], capture_output=True, text=True,
                          timeout=300, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", REFERENCE_SCRIPTS)
def test_reference_bench_small(script):
    if importlib.util.find_spec("torchreid") is None:
        pytest.skip("torchreid is not installed (reference implementation for the benchmarks)")
    out = run_small(script)
    assert "| implementation | input | median s |" in out
    assert out.count("\n| ") >= 3  # header + at least two result rows
    assert "outputs agree" in out


@pytest.mark.slow
@pytest.mark.parametrize("script, row", OWN_SCRIPTS.items())
def test_own_bench_small(script, row):
    out = run_small(script)
    assert row in out


def test_identity_bootstrap_interval():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_attribute_consensus", BENCH / "bench_attribute_consensus.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(BENCH))
    import numpy as np

    pids = np.repeat(np.arange(40), 5)
    # every person equally right: resampling people cannot move the mean
    same = np.full((200, 3), 0.5)
    assert bench.identity_bootstrap(same, pids) == pytest.approx((50.0, 50.0))
    # half the people always right, half always wrong: the interval is wide and holds the mean
    split = np.repeat((np.arange(40) % 2).astype(float), 5)[:, None].repeat(3, 1)
    low, high = bench.identity_bootstrap(split, pids)
    assert low < 50 < high and high - low > 20


def write_metrics(folder: Path, rows: list[dict]) -> Path:
    import pandas as pd

    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    return folder


def test_compare_runs_table_and_figure(tmp_path):
    val = lambda epoch, minute, m: {"epoch": epoch, "time/train_min": minute, "val/mAP": m, "val/rank1": m + 0.1,  # noqa: E731
                                    "val/mean_acc": 0.8}
    plain = write_metrics(tmp_path / "plain", [val(0, 10, 0.2), val(1, 20, 0.4), val(2, 30, 0.5)])
    pseudo = write_metrics(tmp_path / "pseudo", [val(0, 12, 0.3), {"epoch": 0, "pseudo/round": 1}, val(1, 25, 0.6)])
    figure = tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, str(BENCH / "compare_runs.py"), "--run", f"plain={plain}", "--run",
                           f"with rounds={pseudo}", "--minutes", "5", "20", "30", "--out", str(figure)],
                          capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr
    # before the first validation and past a run's end: "-"; else the last validation at or before the budget
    assert "| plain | - | 40.00 / 50.00 / 80.00 | 50.00 / 60.00 / 80.00 | 50.00 (2, 30) |" in proc.stdout
    assert "| with rounds | - | 30.00 / 40.00 / 80.00 | - | 60.00 (1, 25) |" in proc.stdout
    assert figure.stat().st_size > 10_000


def test_compare_runs_puts_a_fine_tuning_after_the_run_it_started_from(tmp_path):
    val = lambda epoch, minute, m: {"epoch": epoch, "time/train_min": minute, "val/mAP": m, "val/rank1": m,  # noqa: E731
                                    "val/mean_acc": 0.8}
    base = write_metrics(tmp_path / "base", [val(0, 10, 0.2), val(1, 20, 0.4)])
    tuned = write_metrics(tmp_path / "tuned", [val(0, 5, 0.5), {"epoch": 0, "pseudo/round": 1}, val(1, 10, 0.6)])
    command = [sys.executable, str(BENCH / "compare_runs.py"), "--run", f"base={base}", "--run", f"tuned={tuned}",
               "--minutes", "20", "25", "30", "--out", str(tmp_path / "c.png")]
    proc = subprocess.run([*command, "--start", "tuned=20"], capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr
    # tuned's clock runs from minute 20: its validations land at 25 and 30, its best at minute 30
    assert "| tuned | - | 50.00 / 50.00 / 80.00 | 60.00 / 60.00 / 80.00 | 60.00 (1, 30) |" in proc.stdout, proc.stdout
    wrong = subprocess.run([*command, "--start", "other=20"], capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert wrong.returncode != 0 and "--start 'other=20': expected LABEL=MINUTES with the LABEL of a --run (base, tuned)" in wrong.stderr


def test_compare_runs_at_equal_epochs(tmp_path):
    val = lambda epoch, minute, m: {"epoch": epoch, "time/train_min": minute, "val/mAP": m, "val/rank1": m,  # noqa: E731
                                    "val/mean_acc": 0.8}
    one = write_metrics(tmp_path / "one", [val(0, 10, 0.2), val(1, 20, 0.4), val(2, 30, 0.5)])
    ddp = write_metrics(tmp_path / "ddp", [val(0, 6, 0.25), val(2, 18, 0.45)])  # epoch 1 not validated
    proc = subprocess.run([sys.executable, str(BENCH / "compare_runs.py"), "--run", f"one={one}", "--run", f"ddp={ddp}",
                           "--epochs", "1", "2", "3", "--out", str(tmp_path / "e.png")],
                          capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr
    # the validation at (or the last before) each epoch, whatever the minutes; "-" past a run's last epoch
    assert "| run | epoch 1: mAP / rank-1 / attr | epoch 2: mAP / rank-1 / attr | epoch 3: mAP / rank-1 / attr |" in proc.stdout
    assert "| one | 40.00 / 40.00 / 80.00 | 50.00 / 50.00 / 80.00 | - | 50.00 (2, 30) |" in proc.stdout, proc.stdout
    assert "| ddp | 25.00 / 25.00 / 80.00 | 45.00 / 45.00 / 80.00 | - | 45.00 (2, 18) |" in proc.stdout, proc.stdout


def test_compare_runs_refuses_a_folder_without_metrics(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "compare_runs.py"), "--run", f"x={tmp_path}"],
                          capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert proc.returncode != 0 and f"{tmp_path / 'metrics.csv'}: no metrics.csv" in proc.stderr
