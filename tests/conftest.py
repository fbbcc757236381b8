"""Shared fixtures: composed Hydra configs shrunk for tests, paths to the real shared data, and tiny artefacts made
once per test run and shared by its processes (pytest-xdist workers, ``-n auto`` in pyproject.toml)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
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


def pytest_addoption(parser, pluginmanager) -> None:
    """``pytest -p no:xdist`` runs the suite in one process: pyproject.toml's ``-n auto --dist worksteal`` are then
    accepted and ignored instead of an "unrecognized arguments" error."""
    if not pluginmanager.hasplugin("xdist"):
        group = parser.getgroup("xdist (not loaded)")
        # _addoption as xdist itself: pytest reserves lowercase short options for plugins
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None, help="ignored: xdist is not loaded")
        group.addoption("--dist", dest="dist", default=None, help="ignored: xdist is not loaded")


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown, and not an error, when xdist is not loaded
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one test process per core, at most 4, and at most one per 6 GiB of memory (a process that holds
    the tiny networks and images of its modules peaks near 5 GiB)."""
    from src.runtime import usable_cores

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(usable_cores(), 4, int(memory_gib // 6)))


def pytest_configure(config) -> None:
    """Several test processes share the cores: each computes with one torch thread, as the entry points' own
    ``torch_threads=auto`` would choose beside a busy core."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """A folder all processes of this test run share (the parent of each xdist worker's own base folder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(folder: Path, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder / name)`` run by the first process of the test run that asks, under a file lock; the others
    wait and get the same path. A build that failed is tried again by the next process that asks."""
    from filelock import FileLock

    slug = hashlib.sha1(name.encode()).hexdigest()[:12]
    marker = folder / ".made" / f"{slug}.path"
    marker.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(marker) + ".lock"):
        if not marker.is_file():
            target = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}-{slug}"  # a path Hydra takes unquoted
            marker.write_text(str(build(target)))
        return Path(marker.read_text())


@pytest.fixture(scope="session")
def cache_dir(run_folder) -> Path:
    """One cache for the whole test run: the synthetic data sets and network outputs are written atomically, so the
    test processes share them safely."""
    folder = run_folder / "cache"
    folder.mkdir(exist_ok=True)
    return folder


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


def tiny_training(run_folder: Path, cache_dir: Path, name: str, overrides: list[str]) -> Path:
    """The run folder of a tiny training on the small synthetic data, made once per test run."""

    def build(target: Path) -> Path:
        from src.train import train

        train(compose_config("train", [*overrides, *SMALL_DATA, "predict_test=false"], target, cache_dir))
        return target

    return made_once(run_folder, name, build)


@pytest.fixture(scope="session")
def tiny_strong_ckpt(run_folder, cache_dir) -> Path:
    """A 1-epoch (2-batch) strong re-ID + attribute model on the small synthetic data, trained once per test run."""
    run = tiny_training(run_folder, cache_dir, "tiny_strong",
                        ["task=reid_strong", "trainer.max_epochs=1", "trainer.limit_train_batches=2"])
    return run / "checkpoints" / "last.ckpt"
