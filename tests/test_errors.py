"""src/errors.py: a value Hydra's override grammar cannot parse ends in one line and status 2, before Hydra runs."""

from __future__ import annotations

import pytest

from src.errors import check_overrides
from src.search import hydra_argv


def test_an_unquoted_path_hydra_cannot_parse_is_one_line_with_how_to_quote_it(capsys):
    with pytest.raises(SystemExit) as stop:
        check_overrides(["src.index", "action=build", "gallery=/data/my gallery(1)", "ckpt_path=a.ckpt"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: gallery=/data/my gallery(1): Hydra cannot parse this value")
    assert "gallery='/data/my gallery(1)'" in lines[0]


def test_what_hydra_parses_passes():
    check_overrides(["src.train", "task=reid", "data.root=../shared/data/x", "-m", "seed=1,2", "--cfg", "job",
                     "ckpt_path='/a b/c(1).ckpt'"])
    check_overrides(hydra_argv(["src.search", "index=i", "query=q", "filter=upcolor=red,backpack=yes"]))


# ---- OS errors at the output location: one line naming the path, status 2, nothing created ----


def test_an_os_error_at_an_output_path_is_one_line_naming_it(tmp_path, capsys):
    from src.errors import one_line_errors
    from src.io.atomic import write_text

    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    @one_line_errors
    def task():
        write_text(blocker / "out" / "metrics.json", "{}")

    with pytest.raises(SystemExit) as stop:
        task()
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {blocker / 'out'}: Not a directory"), lines
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_a_bug_that_raises_an_os_error_keeps_its_traceback():
    from src.errors import known_cause

    assert known_cause(FileNotFoundError(2, "No such file or directory", "x")) is None  # our readers name inputs
    assert known_cause(OSError("no errno, no path")) is None
    assert str(known_cause(PermissionError(13, "Permission denied", "/out/x"))).startswith("/out/x: Permission denied (")


def test_a_run_folder_under_a_file_is_one_line_before_hydra_creates_anything(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "src.train", "task=attributes", f"hydra.run.dir={blocker}/run",
                             f"paths.cache_dir={tmp_path}/cache"], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
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
    assert len(lines) == 1 and lines[0].startswith(f"error: hydra.run.dir={tmp_path}/runs/one: {tmp_path}: permission denied")
    assert not (tmp_path / "runs").exists()
    monkeypatch.undo()
    OutputLocationCheck().on_run_start(config)  # writable: nothing said, nothing created (Hydra creates it)
    assert not (tmp_path / "runs").exists()
