"""Two-process DDP (gloo, CPU) gives the same validation numbers as one process, for attributes and re-ID."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

COMMON = [
    "data.num_workers=0", "data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.val_ratio=0.3",
    "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.num_sanity_val_steps=0", "predict_test=false",
    "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
    "data.eval_batch_size=7",  # uneven: 2 ranks pad the last batch with repeated samples
]
RANDOM_INIT = ["model.net.backbone.pretrained=false"]


def run(tmp_path, name: str, overrides: list[str], cache) -> dict:
    out = tmp_path / name
    command = [sys.executable, "-m", "src.train", *overrides, *COMMON, f"hydra.run.dir={out}", f"paths.cache_dir={cache}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return tmp, run(tmp, "single", ["task=attributes", *RANDOM_INIT], tmp / "cache")["best_checkpoint"]


def test_ddp_attribute_validation_equals_single_process(stage1):
    tmp, checkpoint = stage1
    # validate the same checkpoint with 1 and 2 processes: identical weights, identical data
    validate = ["task=attributes", *RANDOM_INIT, f"validate_ckpt={checkpoint}"]
    one = run(tmp, "one", validate, tmp / "cache")
    two = run(tmp, "two", [*validate, "trainer=ddp"], tmp / "cache")
    for key in [k for k in one if k.startswith("val/acc/")] + ["val/mean_acc"]:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key


def test_ddp_reid_validation_equals_single_process(stage1):
    tmp, checkpoint = stage1
    reid = ["task=reid", f"model.stage1_ckpt={checkpoint}"]
    trained = run(tmp, "reid", reid, tmp / "cache")["best_checkpoint"]
    one = run(tmp, "reid_one", [*reid, f"validate_ckpt={trained}"], tmp / "cache")
    two = run(tmp, "reid_two", [*reid, f"validate_ckpt={trained}", "trainer=ddp"], tmp / "cache")
    for key in ("val/mAP", "val/rank1", "val/mINP", "val/mean_acc"):
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    assert 0 < one["val/mAP"] <= 1
