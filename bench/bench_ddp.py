"""Both cores for one training: DDP (2 processes x 1 thread, gloo) against one process at 1 and at 2 threads.

Runs ``python -m src.train task=reid_strong`` once per setting, one after the other, for the same number of epochs
on the same data, and reads each run folder's ``metrics.csv``: minutes per epoch (Lightning's fit clock, a validation
pass included), the speed-up over one process at one thread, and val mAP / rank-1 / attribute mean after every epoch.
Every setting sees the same images per epoch and the same optimizer steps: DDP runs ``data.batch_size`` / 2 per
process (P x K split by identity groups across the ranks), so its gradient step averages the same 64 images.

    python bench/bench_ddp.py --epochs 4                   # course data, 128x64 (~1 hour on 2 idle cores)
    python bench/bench_ddp.py --small                      # synthetic, tiny: a smoke run of the same path
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import REPO, machine_line, markdown_table  # noqa: E402

SETTINGS = {  # label -> overrides
    "1 process x 1 thread": ["torch_threads=1"],
    "1 process x 2 threads": ["torch_threads=2"],
    "DDP 2 processes x 1 thread": ["torch_threads=1", "trainer=ddp", "trainer.devices=2"],
}


def run(label: str, overrides: list[str], common: list[str], batch: int, out: Path) -> dict:
    ddp = "trainer=ddp" in overrides
    folder = out / label.replace(" ", "_")
    command = [sys.executable, "-m", "src.train", *common, *overrides, f"data.batch_size={batch // 2 if ddp else batch}",
               f"hydra.run.dir={folder}"]
    print(" ".join(command[1:]), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{label}: exit {result.returncode}\n{result.stderr[-3000:]}")
    history = pd.read_csv(folder / "metrics.csv")
    val = history.dropna(subset=["val/mAP", "time/train_min"]).sort_values("epoch")
    return {"label": label, "wall_s": wall, "minutes": val["time/train_min"].tolist(),
            "mAP": (100 * val["val/mAP"]).tolist(), "rank1": (100 * val["val/rank1"]).tolist(),
            "attr": (100 * val["val/mean_acc"]).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64, help="images per optimizer step (P x K), all settings")
    parser.add_argument("--workers", type=int, default=1, help="data.num_workers per process")
    parser.add_argument("--only", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None, help="run folders (default outputs/bench_ddp; --small: temp)")
    parser.add_argument("--small", action="store_true", help="synthetic data, tiny images, 2 epochs of 2 steps")
    args = parser.parse_args()
    common = ["task=reid_strong", f"trainer.max_epochs={args.epochs}", f"data.num_workers={args.workers}",
              "predict_test=false", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]
    if args.small:
        args.batch = 16
        common += ["data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.val_ratio=0.3", "data.height=64",
                   "data.width=32", "model.net.backbone.pretrained=false", "trainer.max_epochs=2",
                   "trainer.limit_train_batches=2"]
    else:
        common += ["data=market_course", "data.height=128", "data.width=64"]
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as temporary:
        out = args.out or (Path(temporary) if args.small else REPO / "outputs" / "bench_ddp")
        rows = [run(label, SETTINGS[label], common, args.batch, out) for label in args.only]
    base = rows[0]["minutes"][-1] / len(rows[0]["minutes"])
    table = []
    for row in rows:
        per_epoch = row["minutes"][-1] / len(row["minutes"])
        curve = " / ".join(f"{m:.2f}" for m in row["mAP"])
        table.append([row["label"], f"{per_epoch:.2f}", f"{base / per_epoch:.2f}x", f"{row['wall_s'] / 60:.1f}", curve,
                      f"{row['rank1'][-1]:.2f}", f"{row['attr'][-1]:.2f}"])
    print(markdown_table(["setting", "min / epoch (val included)", "speed-up", "command wall (min)",
                          "val mAP after each epoch", "rank-1 (last)", "attribute mean (last)"], table))


if __name__ == "__main__":
    main()
