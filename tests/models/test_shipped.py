"""src/models/shipped.py: commands without ckpt_path use the shipped network of the kind they need, and say so."""

from __future__ import annotations

import logging
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from src.errors import ConfigError
from src.models.shipped import checkpoint_or_shipped
from tests.conftest import ROOT, SAMPLES

PATHS = OmegaConf.create({"weights_dir": str(ROOT / "weights"),
                          "shipped": {"reid": "strong_reid_128x64.pt", "attributes": "attributes_lite0_256x128.pt"}})


def test_a_given_checkpoint_is_used_as_it_is():
    assert checkpoint_or_shipped("mine.ckpt", PATHS, "reid", "src.eval") == "mine.ckpt"


def test_no_checkpoint_means_the_shipped_one_of_the_kind_named_in_the_log(caplog):
    with caplog.at_level(logging.INFO):
        path = checkpoint_or_shipped(None, PATHS, "attributes", "src.predict")
    assert path == str(ROOT / "weights" / "attributes_lite0_256x128.pt")
    assert f"src.predict: the shipped attributes network {path}" in caplog.text
    assert checkpoint_or_shipped(None, PATHS, "reid", "src.export").endswith("strong_reid_128x64.pt")


def test_a_missing_shipped_file_is_one_line(tmp_path):
    paths = OmegaConf.merge(PATHS, {"weights_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"strong_reid_128x64.pt: src.eval without ckpt_path uses the shipped reid "
                                          r"network, and this file is missing; pass ckpt_path=PATH"):
        checkpoint_or_shipped(None, paths, "reid", "src.eval")


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="needs ../shared/data/market1501-samples (the shared data)")
def test_predict_without_ckpt_path_uses_the_shipped_attribute_network(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    for path in sorted(SAMPLES.glob("*.jpg"))[:3]:
        (images / path.name).symlink_to(path)
    result = subprocess.run([sys.executable, "-m", "src.predict", f"input={images}", f"hydra.run.dir={tmp_path}/out",
                             "torch_threads=1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "src.predict: the shipped attributes network" in result.stdout + result.stderr
    table = pd.read_csv(next((tmp_path / "out").glob("*.csv")))
    assert len(table) == 3 and {"age", "upblack", "gender"} <= set(table.columns)
