"""Results that cannot be silently wrong: checkpoints carry their input contract and identity split, run folders
take one writer and no accidental second run, known errors are one line (settings range-checked at start:
tests/test_config.py)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

from src.config import compose_config
from src.errors import ConfigError
from src.models.loading import CheckpointError, InputSizeWarning, load_contract
from src.run_folder import LOCK_NAME
from src.train import train
from tests.conftest import ROOT, SMALL_DATA

TINY = [*SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=1", "predict_test=false",
        "data.height=64", "data.width=32", "data.val_ratio=0.25"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("tiny") / "run"
    cfg = compose_config("train", ["task=reid_strong", *TINY], out, cache_dir)
    train(cfg)
    return out, out / "checkpoints" / "last.ckpt"


def eval_cfg(ckpt, out, cache_dir, *extra):
    data = [o for o in SMALL_DATA if not o.startswith(("logger=", "model."))]
    return compose_config("eval", ["task=reid_strong", f"ckpt_path={ckpt}", *data, *extra], out, cache_dir)


def test_checkpoint_records_its_contract(tiny_run):
    contract = load_contract(tiny_run[1])
    assert (contract.kind, contract.height, contract.width, contract.metric) == ("reid", 64, 32, "cosine")
    assert contract.backbone == "tf_efficientnet_lite0" and len(contract.mean) == 3 and len(contract.std) == 3
    assert contract.split["val_ratio"] == 0.25 and contract.split["split_seed"] == 0
    assert contract.split["num_val_ids"] == 6 and len(contract.split["val_ids_sha256"]) == 64


def test_eval_uses_the_trained_size_and_warns_on_another(tiny_run, tmp_path, cache_dir, recwarn):
    from src.evaluation import evaluate

    default = evaluate(eval_cfg(tiny_run[1], tmp_path / "a", cache_dir, "split=val"))
    assert default["input_size"] == [64, 32]
    assert not [w for w in recwarn if issubclass(w.category, InputSizeWarning)]
    with pytest.warns(InputSizeWarning, match=r"trained at 64x32, run at 128x64"):
        other = evaluate(eval_cfg(tiny_run[1], tmp_path / "b", cache_dir, "split=val", "data.height=128", "data.width=64"))
    recorded = json.loads((tmp_path / "b" / "eval_metrics.json").read_text())
    assert recorded["input_size"] == [128, 64] and recorded["contract"]["height"] == 64
    assert other["mAP"] != default["mAP"] or other["mean_attribute_accuracy"] != default["mean_attribute_accuracy"]


def test_eval_split_follows_the_checkpoint_and_refuses_another(tiny_run, tmp_path, cache_dir):
    from src.evaluation import evaluate

    val = evaluate(eval_cfg(tiny_run[1], tmp_path / "val", cache_dir, "split=val"))
    assert val["num_identities"] == 6 and val["split_settings"] == {"val_ratio": 0.25, "split_seed": 0}
    with pytest.raises(ConfigError, match=r"split=val evaluates the identities this checkpoint held out, but "
                                          r"data\.split_seed=1 \(the checkpoint's: 0\)"):
        evaluate(eval_cfg(tiny_run[1], tmp_path / "leak", cache_dir, "split=val", "data.split_seed=1"))
    assert not (tmp_path / "leak" / "eval_metrics.json").exists()
    # other identities under the same settings (another dataset) are caught by the digest
    with pytest.raises(Exception, match="are not the 6 the checkpoint"):
        evaluate(eval_cfg(tiny_run[1], tmp_path / "other", cache_dir, "split=val", "data.source.num_train_ids=28"))


def test_a_folder_holding_a_run_takes_no_second_run_unless_asked(tiny_run, cache_dir):
    out, _ = tiny_run
    cfg = compose_config("train", ["task=reid_strong", *TINY], out, cache_dir)
    with pytest.raises(ConfigError, match=r"already holds a run \(checkpoints, metrics.csv.*resume it with ckpt_path=last, "
                                          r"start over with overwrite=true"):
        train(cfg)
    with open(out / LOCK_NAME, "a+") as held:  # a live writer
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        resume = compose_config("train", ["task=reid_strong", *TINY, "ckpt_path=last"], out, cache_dir)
        with pytest.raises(ConfigError, match="another training .* is writing into this run folder"):
            train(resume)


def test_overwrite_starts_afresh(tiny_run, make_cfg, tmp_path):
    import shutil

    shutil.copytree(tiny_run[0], tmp_path / "run")  # a folder holding a (re-ID) run, without training one more
    (tmp_path / "run" / "checkpoints" / "stale.ckpt").write_bytes(b"old")
    train(make_cfg(["task=attributes", *TINY, "overwrite=true"]))
    assert not (tmp_path / "run" / "checkpoints" / "stale.ckpt").exists()
    assert load_contract(tmp_path / "run" / "checkpoints" / "last.ckpt").kind == "attributes"  # the new run's


def test_resume_needs_a_checkpoint_and_a_readable_one(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"run: ckpt_path=last, but this run folder has no checkpoints/last.ckpt"):
        train(make_cfg(["task=attributes", *TINY, "ckpt_path=last"]))
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="broken.ckpt: not a loadable checkpoint"):
        train(make_cfg(["task=attributes", *TINY, f"ckpt_path={broken}"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_at_another_input_size_is_refused(tiny_run, cache_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run[0], copy)
    cfg = compose_config("train", ["task=reid_strong", *TINY, "ckpt_path=last", "data.height=128", "data.width=64",
                                   "trainer.max_epochs=2"], copy, cache_dir)
    with pytest.raises(Exception, match=r"data.height=128: the checkpoint being resumed was trained with 64"):
        train(cfg)


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_known_errors_are_one_line_with_status_2(tmp_path):
    result = run_cli("src.eval", "task=attributes", f"ckpt_path={tmp_path / 'missing.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'out'}", env={"HYDRA_FULL_ERROR": "0"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.ckpt'}: checkpoint not found"]
    full = run_cli("src.eval", "task=attributes", f"ckpt_path={tmp_path / 'missing.ckpt'}",
                   f"hydra.run.dir={tmp_path / 'out'}", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode != 0 and "Traceback" in full.stderr
