"""Thread settings side by side, on an idle CPU and beside one busy process: README command 1 (attribute training
on the synthetic data) and attribute prediction over its test/ folder, each run as the user runs it.

    python bench/bench_threads.py [--epochs 2] [--small]

Rows: ``torch_threads`` auto (the default: cores free at start), 1, 2, and 2 with OpenMP's spinning wait
(``OMP_WAIT_POLICY=ACTIVE``, the library default before) to show what passive waiting buys.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench._common import machine_line  # noqa: E402

SETTINGS = (("auto (default)", "auto", "PASSIVE"), ("1", "1", "PASSIVE"), ("2", "2", "PASSIVE"),
            ("2, OpenMP active wait", "2", "ACTIVE"))


def run(args: list[str], threads: str, wait_policy: str, cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": wait_policy, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, *args, f"torch_threads={threads}"], cwd=cwd, env=env, capture_output=True,
                         text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    used = re.search(r"(\d+) torch threads?", out.stdout + out.stderr)
    return elapsed, used.group(1) if used else threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="1 epoch, 24 identities: a smoke test")
    args = parser.parse_args()
    data = ["data.source.num_train_ids=24"] if args.small else []
    epochs = 1 if args.small else args.epochs
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        tmp = Path(tmp)
        for condition in ("idle", "one busy core"):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition != "idle" else None
            try:
                for label, threads, policy in SETTINGS:
                    run_dir = tmp / f"{condition}-{threads}-{policy}".replace(" ", "_")
                    train_s, used = run(["-m", "src.train", "task=attributes", f"trainer.max_epochs={epochs}",
                                         f"hydra.run.dir={run_dir}", "predict_test=false", *data], threads, policy, REPO)
                    ckpt = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
                    test_dir = REPO / ".cache" / f"synthetic-seed0-ids{24 if args.small else 100}" / "test"
                    predict_s, _ = run(["-m", "src.predict", f"ckpt_path={ckpt}", f"input={test_dir}",
                                        f"hydra.run.dir={run_dir}/predict", *data], threads, policy, REPO)
                    images = len(list(test_dir.iterdir()))
                    rows.append((condition, label, used, train_s, predict_s, images))
                    print(f"{condition:14s} {label:24s} threads={used} train {train_s:6.1f} s  predict {predict_s:6.1f} s",
                          file=sys.stderr)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    print(f"\n{machine_line('per row')}\n")
    print(f"| CPU | torch_threads | threads used | train {epochs} epoch{'s' * (epochs > 1)} (s) | predict {rows[0][5]} images (s) |")
    print("|---|---|---|---|---|")
    for condition, label, used, train_s, predict_s, _ in rows:
        print(f"| {condition} | {label} | {used} | {train_s:.1f} | {predict_s:.1f} |")


if __name__ == "__main__":
    main()
