"""Progressive resolution (callbacks.progressive_resizing): a training switches its input size at a fraction of the budget, the
checkpoint's contract records the final size, and a run resumed after the switch continues at it."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl

from src.callbacks.progressive_resizing import ProgressiveResizing
from src.errors import ConfigError
from src.models.loading import load_contract
from src.train import train
from tests.conftest import SMALL_DATA


class SizeProbe(pl.Callback):
    """Writes (epoch, train image size, val image size) of each epoch's first batch to ``path``, one JSON line each."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            val = trainer.datamodule.val_set[0]["image"].shape[-2:]
            with open(self.path, "a") as handle:
                handle.write(json.dumps([trainer.current_epoch, list(batch["image"].shape[-2:]), list(val)]) + "\n")


def seen(path) -> list:
    lines = path.read_text().splitlines() if path.is_file() else []
    path.unlink(missing_ok=True)
    return [(epoch, tuple(size), tuple(val)) for epoch, size, val in map(json.loads, lines)]


PROGRESSIVE = ["task=reid_strong", *SMALL_DATA, "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
               "predict_test=false", "callbacks.progressive_resizing.steps=[{at: 0.5, height: 160, width: 80}]",
               "+callbacks.size_probe._target_=tests.data.test_progressive.SizeProbe"]


def test_training_switches_size_at_the_budget_fraction_and_the_checkpoint_records_the_final_one(make_cfg, tmp_path):
    probe = [f"+callbacks.size_probe.path={tmp_path / 'sizes.jsonl'}"]
    train(make_cfg([*PROGRESSIVE, *probe, "trainer.max_epochs=4"]))
    epochs = seen(tmp_path / "sizes.jsonl")
    assert [(epoch, size) for epoch, size, _ in epochs] == [(0, (128, 64)), (1, (128, 64)), (2, (160, 80)), (3, (160, 80))]
    assert all(size == val for _, size, val in epochs)  # validation at the training's current size
    contract = load_contract(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (contract.height, contract.width) == (160, 80)

    # resumed after the switch, with the command's own data.height=128: continues at 160x80
    train(make_cfg([*PROGRESSIVE, *probe, "trainer.max_epochs=5", "ckpt_path=last"]))
    resumed = seen(tmp_path / "sizes.jsonl")
    assert resumed[-1][0] == 4 and {size for _, size, _ in resumed} == {(160, 80)}


@pytest.mark.parametrize("steps", [[{"at": 1.2, "height": 160, "width": 80}], [{"at": 0.5, "height": 160}],
                                   [{"at": 0.6, "height": 160, "width": 80}, {"at": 0.4, "height": 192, "width": 96}]])
def test_bad_progressive_steps_are_refused(steps):
    with pytest.raises(ConfigError, match="callbacks.progressive_resizing.steps entry"):
        ProgressiveResizing(steps)


def test_sizes_follow_the_fractions():
    resizing = ProgressiveResizing([{"at": 0.3, "height": 160, "width": 80}, {"at": 0.7, "height": 256, "width": 128}])
    resizing.schedule = [(0.0, 128, 64), *resizing.steps]
    assert [resizing.size_at(p) for p in (0.0, 0.29, 0.3, 0.69, 0.7, 1.0)] == \
        [(128, 64), (128, 64), (160, 80), (160, 80), (256, 128), (256, 128)]
