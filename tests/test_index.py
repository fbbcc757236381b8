"""src/index.py: the ``build`` / ``info`` command line (the action word and the info folder made Hydra overrides)
and the settings it refuses in one line before any library loads (the builds: tests/retrieval/test_build.py)."""

from __future__ import annotations

import pytest

import src.cli
from src.config import compose_config
from src.index import hydra_argv, main


@pytest.mark.parametrize("argv, expected", [
    (["x", "build", "ckpt_path=a.ckpt", "gallery=g"], ["x", "action=build", "ckpt_path=a.ckpt", "gallery=g"]),
    (["x", "info", "some/folder"], ["x", "action=info", "output=some/folder"]),
    (["x", "info", "index=some/folder", "torch_threads=1"], ["x", "action=info", "output=some/folder", "torch_threads=1"]),
    (["x", "info", "output=some/folder"], ["x", "action=info", "output=some/folder"]),  # already an override: kept
    (["x", "info"], ["x", "action=info"]),
    (["x", "ckpt_path=a.ckpt", "gallery=g"], ["x", "ckpt_path=a.ckpt", "gallery=g"]),  # no action word: build
    (["x"], ["x"]),
])
def test_the_action_word_and_the_info_folder_become_overrides(argv, expected):
    assert hydra_argv(argv) == expected


@pytest.fixture
def run_index(tmp_path, monkeypatch, capsys):
    """``main`` on a composed index config; returns (exit status, stderr)."""
    monkeypatch.setattr(src.cli, "drop_unused_run_folder", lambda: None)  # no Hydra run folder here

    def run(*overrides: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as end:
            main(compose_config("index", list(overrides), tmp_path / "run"))
        return end.value.code, capsys.readouterr().err

    return run


@pytest.mark.parametrize("overrides, message", [
    (["action=rebuild"], "error: action=rebuild: expected one of ('build', 'info')"),
    (["action=info"], "error: info needs the index folder: python -m src.index info FOLDER"),
    (["ckpt_path=a.ckpt"], "error: build needs gallery=DIR (and ckpt_path=PATH, or the shipped re-ID network)"),
    (["gallery=g", "paths.weights_dir=nowhere"], "error: nowhere/strong_reid_128x64.pt: src.index build without ckpt_path "
                                                 "uses the shipped reid network, and this file is missing; pass ckpt_path=PATH"),
    (["ckpt_path=a.ckpt", "gallery=g", "data.height=8"], "error: data.height=8: expected a whole number >= 16 (pixels)"),
    (["ckpt_path=a.ckpt", "gallery=g", "torch_threads=zero"], "error: torch_threads='zero': expected a positive whole number or auto"),
])
def test_incomplete_or_bad_settings_end_in_one_line_with_status_2(run_index, overrides, message):
    status, stderr = run_index(*overrides)
    assert status == 2 and stderr.strip() == message


def test_info_of_a_folder_that_is_no_index_names_it(run_index, tmp_path):
    status, stderr = run_index("action=info", f"output={tmp_path / 'missing'}")
    assert status == 2 and str(tmp_path / "missing") in stderr and "index not found" in stderr
