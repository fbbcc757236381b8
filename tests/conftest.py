"""Shared fixtures: composed Hydra configs shrunk for tests, and paths to the real shared data."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from src.config import CONF_DIR as CONF  # noqa: F401  (re-exported to tests)
from src.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
COURSE = SHARED / "market1501-course"
SAMPLES = SHARED / "market1501-samples"
ATTRIBUTE_MAT = SHARED / "market-attribute" / "market_attribute.mat"

needs_shared = pytest.mark.skipif(
    not COURSE.is_dir(), reason=f"real Market-1501 data not found at {SHARED} (only CI and developers have ../shared)"
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


SMALL_DATA = [
    "data.num_workers=0",
    "data.source.num_train_ids=24",
    "data.source.num_test_ids=6",
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "model.net.backbone.pretrained=false",
    "logger=csv",
]


@pytest.fixture
def make_cfg(tmp_path, cache_dir):
    """make_cfg(overrides, config_name="train") -> a composed config writing into tmp_path."""

    def factory(overrides: list[str], config_name: str = "train") -> DictConfig:
        return compose_config(config_name, overrides, tmp_path / "run", cache_dir)

    return factory


@pytest.fixture(scope="session")
def tiny_strong_ckpt(tmp_path_factory, cache_dir) -> Path:
    """A 1-epoch (2-batch) strong re-ID + attribute model on the small synthetic data, trained once per session."""
    from src.train import train

    root = tmp_path_factory.mktemp("tiny_strong")
    train(compose_config("train", ["task=reid_strong", *SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                   "predict_test=false"], root / "run", cache_dir))
    return root / "run" / "checkpoints" / "last.ckpt"
