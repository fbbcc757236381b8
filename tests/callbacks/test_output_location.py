"""src/callbacks/output_location.py: a run folder that cannot be created or written is one line and status 2, before
Hydra creates anything."""

from __future__ import annotations

import pytest


def test_a_run_folder_under_a_file_is_one_line_before_hydra_creates_anything(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "src.train", "task=attributes", f"hydra.run.dir={blocker}/run",
                             f"paths.cache_dir={tmp_path}/cache"], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (f"error: hydra.run.dir={blocker}/run: {blocker} is a file, not a folder "
                                            "(choose a folder this user can write to: hydra.run.dir=...)"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no cache, no run folder


def test_a_read_only_run_folder_is_one_line(tmp_path, monkeypatch, capsys):
    import os

    from omegaconf import OmegaConf

    from src.callbacks.output_location import OutputLocationCheck

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only mount (the tests may run as root)
    config = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "runs" / "one")}, "output_subdir": ".hydra"}})
    with pytest.raises(SystemExit) as stop:
        OutputLocationCheck().on_run_start(config)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: hydra.run.dir={tmp_path}/runs/one: {tmp_path}: not writable by this user")
    assert not (tmp_path / "runs").exists()
    monkeypatch.undo()
    OutputLocationCheck().on_run_start(config)  # writable: nothing said, nothing created (Hydra creates it)
    assert not (tmp_path / "runs").exists()
