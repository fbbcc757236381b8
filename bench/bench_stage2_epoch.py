"""Benchmark 4: one stage-2 (report aggregator) training epoch, cached stage-1 descriptors vs backbone every step.

    python bench/bench_stage2_epoch.py [--small] [--ids 100] [--height 128 --width 64]

Both paths train the same aggregator on the same triplets of a synthetic dataset; the cached path's
one-time descriptor computation is reported on its own row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from src.config import compose_config
from src.train import train


def stage1_checkpoint(workdir: Path, cache: Path, common: list[str]) -> str:
    cfg = compose_config("train", ["task=attributes", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                   "predict_test=false", "model.net.backbone.pretrained=false", *common], workdir / "stage1", cache)
    train(cfg)
    return json.loads((workdir / "stage1" / "metrics.json").read_text())["best_checkpoint"]


def epoch_seconds(workdir: Path, cache: Path, common: list[str], stage1: str, cached: bool, epochs: int) -> tuple[list[float], float]:
    """Per-epoch wall times of ``epochs`` epochs (validation off) and the setup time (cache build)."""
    cfg = compose_config("train", [
        "task=reid", f"model.stage1_ckpt={stage1}", f"model.cached={str(cached).lower()}", f"trainer.max_epochs={epochs}",
        "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "predict_test=false", "~callbacks.early_stopping",
        "~callbacks.model_checkpoint", "~callbacks.threshold_sweep", f"data.num_workers={0 if cached else 2}", *common,
    ], workdir / f"reid_cached{cached}", cache)
    times: list[float] = []

    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            times.append(time.perf_counter() - self.start)

        def on_fit_start(self, trainer, module):
            self.fit_start = time.perf_counter()

    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    start = time.perf_counter()
    model = instantiate(cfg.model, _recursive_=False)
    timer = EpochTimer()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[timer])
    trainer.fit(model, datamodule=datamodule)
    setup = time.perf_counter() - start - sum(times)
    return times, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    ids, epochs = (16, 2) if args.small else (args.ids, args.epochs)
    common = [f"data.source.num_train_ids={ids}", "data.source.num_test_ids=4", f"data.height={args.height}",
              f"data.width={args.width}", "data.num_workers=0",
              "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]
    with tempfile.TemporaryDirectory(prefix="bench_stage2_") as tmp:
        workdir = Path(tmp)
        cache = workdir / "cache"
        stage1 = stage1_checkpoint(workdir, cache, common)
        naive, _ = epoch_seconds(workdir, cache, common, stage1, cached=False, epochs=epochs)
        cached, cache_build = epoch_seconds(workdir, cache, common, stage1, cached=True, epochs=epochs)
    naive_median, cached_median = statistics.median(naive), statistics.median(cached)
    print(f"\nstage-2 epoch time, {ids} synthetic identities, {args.height}x{args.width}, torch threads {torch.get_num_threads()}, "
          f"median of {epochs} epochs\n")
    print("| path | epoch time (s) | ratio |")
    print("|---|---|---|")
    print(f"| backbone every step (naive) | {naive_median:.3f} | 1.0x |")
    print(f"| cached 543-d descriptors | {cached_median:.4f} | {naive_median / cached_median:.0f}x |")
    print(f"| one-time descriptor cache build (setup) | {cache_build:.2f} | |")


if __name__ == "__main__":
    main()
