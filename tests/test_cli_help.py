"""``python -m src.<command> --help`` answers bare for every command (status 0, the task options and the main keys,
no traceback), and a required group or key left out is one line ``error: ...`` with status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from src.cli import check_required
from src.cli_help import help_text
from tests.conftest import ROOT

COMMANDS = ["train", "eval", "predict", "export", "index", "search", "serve", "release", "compare"]
MAIN_KEY = {"train": "predict_test", "eval": "ckpt_path", "predict": "input", "export": "ckpt_path",
            "index": "gallery", "search": "top_k", "serve": "port", "release": "name", "compare": "far"}


def run_module(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_usage_groups_and_main_keys(command):
    text = help_text(command)
    assert text.startswith(f"src.{command}: ") and "usage:\n  python -m src." in text
    assert f"\n  {MAIN_KEY[command]} " in text, text
    if command in ("train", "eval"):
        assert "task (required): attributes | reid | reid_strong" in text
        assert "data: market_course | market_standard | [synthetic]" in text  # data/default.yaml is a base, not an option


@pytest.mark.parametrize("command", ["train", "eval"])  # the two whose --help ended in Hydra's composition error
def test_help_answers_bare_through_the_command_line(command):
    result = run_module(f"src.{command}", "--help")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "task (required)" in result.stdout
    assert "main keys" in result.stdout


@pytest.mark.parametrize(("argv", "expected"), [
    (["src/train.py"], "error: task: required, one of attributes | reid | reid_strong"),
    (["src/eval.py", "ckpt_path=x.ckpt"], "error: task: required, one of attributes | reid | reid_strong"),
    (["src/release.py", "name=x.pt"], "error: ckpt_path, training_command, training_commit: required"),
    (["src/serve.py"], "error: index: required"),
    (["src/search.py", "query=q.jpg"], "error: index: required"),
    (["src/predict.py", "ckpt_path=x.ckpt"], "error: input: required"),
])
def test_a_missing_required_key_is_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        check_required(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(expected) and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv", [
    ["src/train.py", "task=attributes"], ["src/train.py", "experiment=attributes_best"],
    ["src/train.py", "-m", "task=attributes,reid"], ["src/eval.py", "+task=reid", "ckpt_path=x"],
    ["src/serve.py", "index=FOLDER"], ["src/train.py", "--cfg", "job"],
])
def test_given_required_keys_pass(argv):
    check_required(argv)


def test_a_missing_task_through_the_command_line():
    result = run_module("src.train")
    assert result.returncode == 2 and result.stderr.startswith("error: task: required"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout
