"""Two-process DDP (gloo, CPU) gives the same validation numbers as one process."""

from __future__ import annotations

import json
import subprocess
import sys


import pytest

from tests.conftest import ROOT

COMMON = [
    "data.num_workers=0", "data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.val_ratio=0.3",
    "model.net.backbone.pretrained=false", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
    "trainer.num_sanity_val_steps=0", "predict_test=false", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
    "data.eval_batch_size=7",  # uneven: 2 ranks pad the last batch with repeated samples
]


def run(tmp_path, name: str, extra: list[str], cache) -> dict:
    out = tmp_path / name
    command = [sys.executable, "-m", "src.train", "task=attributes", *COMMON, *extra,
               f"hydra.run.dir={out}", f"paths.cache_dir={cache}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_ddp_validation_equals_single_process(tmp_path):
    cache = tmp_path / "cache"
    single = run(tmp_path, "single", [], cache)
    checkpoint = single["best_checkpoint"]
    # validate the same checkpoint with 1 and 2 processes: identical weights, identical data
    one = run(tmp_path, "one", [f"validate_ckpt={checkpoint}"], cache)
    two = run(tmp_path, "two", ["trainer=ddp", f"validate_ckpt={checkpoint}"], cache)
    for key in [k for k in one if k.startswith("val/acc/")] + ["val/mean_acc"]:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
