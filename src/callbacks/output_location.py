"""Hydra callback: a run (or sweep) folder that cannot be created or written ends in one line and status 2.

Hydra creates the folder before the task function runs, outside the entry point's harness (src/cli.py); this check
runs before that (``on_run_start``), creates nothing, and names the folder and why.
"""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from src.cli import fail
from src.io.atomic import writable_folder_problem


class OutputLocationCheck(Callback):
    """Before Hydra creates the run (or sweep) folder: one line and status 2 when it cannot be created or written."""

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config, key: str) -> None:
        folder = Path(str(OmegaConf.select(config, key)))
        if folder.is_dir() and OmegaConf.select(config, "hydra.output_subdir") is None:
            return  # an existing folder Hydra writes nothing into (src.index, src.serve, src.search: hydra.run.dir=.)
        problem = writable_folder_problem(folder)
        if problem is not None:
            fail(f"{key}={folder}: {problem} (choose a folder this user can write to: {key}=...)")
