"""src/predict.py: options that do not fit the images at hand end in one line and status 2, before any output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.retrieval.worlds import world  # noqa: F401  (fixture)


def test_consensus_k_above_the_number_of_images_is_one_line(world, tmp_path):  # noqa: F811
    images = world["data"] / "test"
    count = len(list(images.iterdir()))
    result = subprocess.run([sys.executable, "-m", "src.predict", f"ckpt_path={world['ckpt']}", f"input={images}",
                             "attributes.consensus_k=100", f"hydra.run.dir={tmp_path}/out", "torch_threads=1"],
                            capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (f"error: attributes.consensus_k=100: needs more images than the {count} of the "
                                            f"images to predict; use attributes.consensus_k <= {count - 1} (0 turns the "
                                            "consensus off)"), lines
    assert not list((tmp_path / "out").glob("*.csv"))


def test_a_cut_without_queries_or_out_of_range_is_one_line(world, tmp_path):  # noqa: F811
    """``threshold`` / ``min_p_same`` cut reid_test.txt, which needs ``queries=``; a probability outside (0, 1] is refused."""
    images = world["data"] / "test"
    for option, expected in (("min_p_same=0.5", "error: threshold and min_p_same cut reid_test.txt: pass queries=DIR "
                                                "(the query images) too"),
                             ("min_p_same=1.5", "error: min_p_same=1.5: expected a probability in (0, 1], or null")):
        result = subprocess.run([sys.executable, "-m", "src.predict", f"ckpt_path={world['ckpt']}", f"input={images}", option,
                                 f"hydra.run.dir={tmp_path}/out", "torch_threads=1"],
                                capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert result.returncode == 2 and result.stderr.strip().splitlines() == [expected], result.stderr[-2000:]
