"""The command harness (src/cli.py) and the errors (src/errors.py): a value Hydra's override grammar cannot parse ends in
one line and status 2, before Hydra runs; known errors and OS errors at a path end in one line."""

from __future__ import annotations

import pytest

from src.cli import check_overrides
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


# ---- OS errors at an output path: one line naming it, status 2 (the run folder: tests/callbacks/test_output_location.py) ----


def test_an_os_error_at_an_output_path_is_one_line_naming_it(tmp_path, capsys):
    from src.cli import one_line_errors
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
    from src.cli import known_cause

    assert known_cause(FileNotFoundError(2, "No such file or directory", "x")) is None  # our readers name inputs
    assert known_cause(OSError("no errno, no path")) is None
    assert str(known_cause(PermissionError(13, "Permission denied", "/out/x"))).startswith("/out/x: Permission denied (")


@pytest.mark.parametrize("command", [
    ["src.train", "task=attributes", "torch_threads=0"],                 # refused by the config check
    ["src.eval", "task=attributes", "ckpt_path=missing.ckpt"],           # refused while reading the checkpoint
    ["src.search", "index=missing_index", "query=q.jpg"],                # refused while reading the index
])
def test_a_failed_command_leaves_no_run_folder(command, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    run = tmp_path / "outputs" / "run"
    proc = subprocess.run([sys.executable, "-m", *command, f"hydra.run.dir={run}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert not run.exists() and (tmp_path / "outputs").is_dir()  # only the folder Hydra made for this run goes


def test_a_known_error_in_a_data_loader_worker_stays_one_line(tmp_path):
    from torch.utils.data import DataLoader

    from src.data.datasets import ImageDataset
    from src.data.records import DataError, ImageRecord

    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 a truncated jpeg")
    loader = DataLoader(ImageDataset([ImageRecord(bad, 1, 1)], 64, 32), num_workers=1)
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{bad}: ") and "Traceback" not in message


# what gloo raised in rank 0 when rank 1 was killed with SIGKILL (torch 2.14, two processes on one machine)
GLOO_PEER_GONE = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:3784: "
                  "Connection reset by peer. This is typically caused by a remote worker hanging or bugs in the "
                  "application. Check the logs of the remote worker before reporting an error. GLHF! 🏖️")


def test_a_ddp_peer_killed_is_one_line_saying_how_to_resume(monkeypatch):
    from src.cli import known_cause

    monkeypatch.setenv("RANK", "0")
    known = known_cause(RuntimeError(GLOO_PEER_GONE))
    assert known is not None and len(str(known).splitlines()) == 1
    assert str(known) == ("DDP: process rank 0 lost another process of this run ([127.0.0.1]:3784: Connection reset by "
                          "peer): it was killed or crashed, its own output says why; resume the whole run with the same "
                          "command and ckpt_path=last")
    assert known_cause(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None  # a bug keeps its traceback


@pytest.mark.parametrize("arg, message", [
    ("height=256", "height: this key is now data.height (write data.height=256)"),
    ("+data.num_instances=8",
     "data.num_instances: this key is now data.sampler.num_instances (write data.sampler.num_instances=8)")])
def test_a_key_of_an_earlier_version_is_named_with_its_new_name(arg, message, capsys):
    with pytest.raises(SystemExit) as stop:
        check_overrides(["src.search", "index=i", arg])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
