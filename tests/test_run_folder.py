"""A failed command's run folder: removed when it holds only what the command's start wrote, kept otherwise."""

from __future__ import annotations

import os

from src.run_folder import LOCK_NAME, remove_if_unused


def started(folder, *names, lock_pid=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("a: 1\n")
    (folder / "train.log").write_text("")
    for name in names:
        (folder / name).write_text("x")
    if lock_pid is not None:
        (folder / LOCK_NAME).write_text(str(lock_pid))
    return folder


def test_a_folder_with_only_the_start_of_the_run_is_removed(tmp_path):
    assert remove_if_unused(started(tmp_path / "a", "config.yaml"), "train") and not (tmp_path / "a").exists()
    assert remove_if_unused(started(tmp_path / "b", lock_pid=os.getpid()), "train")  # its own lock


def test_results_another_runs_lock_or_the_working_folder_keep_it(tmp_path, monkeypatch):
    for name, folder in [("results", started(tmp_path / "c", "metrics.csv")),
                         ("other log", started(tmp_path / "d", "search.log")),
                         ("lock of another process", started(tmp_path / "e", lock_pid=1))]:
        assert not remove_if_unused(folder, "train"), name
        assert folder.is_dir()
    monkeypatch.chdir(started(tmp_path / "f"))
    assert not remove_if_unused(tmp_path / "f", "train") and (tmp_path / "f").is_dir()
    assert not remove_if_unused(tmp_path, "train")
