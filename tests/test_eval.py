"""src/eval.py: a checkpoint of the wrong network kind for the task is an error before any work, not a run that
exits 0 without the task's metrics."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT
from tests.models.test_loading import save_attribute_checkpoint
from tests.retrieval.worlds import TINY_NET


def test_a_reid_task_on_an_attributes_checkpoint_is_a_one_line_error(tmp_path):
    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt, TINY_NET)
    command = [sys.executable, "-m", "src.eval", "task=reid_strong", f"ckpt_path={ckpt}", "data=market_course",
               f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}", "torch_threads=1"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {ckpt}: holds an attributes checkpoint, task=reid_strong "
                                                   "needs a re-ID checkpoint"), done.stderr
    assert not (tmp_path / "run" / "eval_metrics.json").exists()
