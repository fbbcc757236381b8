"""src/io/atomic.py: a crash mid-write leaves the old file (or none), never half a file.

The crash is real: a child process starts writing through one of the writers, stops *inside* the atomic
block once part of the new content is on disk (it prints READY and blocks reading its stdin, a pipe the
parent never writes to), and the parent kills it with SIGKILL. No Python cleanup runs, so what is left is
exactly what a power cut of the process would leave. Controls run the same harness (a) with a naive
``open(path, "w")`` writer, which must leave a half file (so the harness really kills mid-write), and
(b) with the pipe closed instead of a kill, where the writer must finish and put the whole new content
in place (so the stall point is inside the writer, before the rename).
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.artist import Artist

from src.errors import ConfigError
from src.io.atomic import atomic_path, check_writable, save_figure, write_csv, write_json, write_text

ROOT = Path(__file__).resolve().parents[2]
OLD = b"old complete content\n" * 100
TARGET_NAMES = {
    "atomic_path": "blob.bin",
    "write_text": "report.txt",
    "write_json": "metrics.json",
    "write_csv": "table.csv",
    "save_figure": "curve.pdf",  # pdf streams to the file while drawing, so the kill lands mid-file
    "naive": "naive.txt",
}
CSV_ROWS, CSV_STALL_ROW = 6000, 5000  # ~200 kB of rows reach the file before the stall


def new_text() -> str:
    return "".join(f"line {i:06d} " + "x" * 50 + "\n" for i in range(20000))  # ~1.3 MB


def new_json() -> dict:
    return {"values": [i / 7 for i in range(20000)], "name": "run"}


def csv_frame(stall_value) -> pd.DataFrame:
    values = [f"row{i:06d}-" + "y" * 30 for i in range(CSV_ROWS)]
    values[CSV_STALL_ROW] = stall_value
    return pd.DataFrame({"a": range(CSV_ROWS), "b": values})


def expected_new(kind: str) -> bytes | None:
    """The complete new content the writer produces (None where it is not byte-deterministic)."""
    import json

    if kind in ("atomic_path", "write_text", "naive"):
        return new_text().encode()
    if kind == "write_json":
        return (json.dumps(new_json(), indent=2, default=float) + "\n").encode()
    if kind == "write_csv":
        return csv_frame(f"row{CSV_STALL_ROW:06d}-released").to_csv(index=False, chunksize=100).encode()
    return None  # pdf: embeds a creation date


# The child: imports the test module's payload builders from this file, stalls inside the write.
CHILD = textwrap.dedent(
    r"""
    import importlib.util, io, os, pathlib, sys

    spec = importlib.util.spec_from_file_location("payloads", sys.argv[3])
    payloads = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(payloads)
    from src.io import atomic

    kind, target = sys.argv[1], pathlib.Path(sys.argv[2])

    def stall():
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        sys.stdin.read()  # blocks until the parent closes the pipe (or kills us)

    class StallingFile:
        # wraps a file opened for writing: half of the first write, flush, stall, then the rest
        def __init__(self, handle):
            self.handle, self.stalled = handle, False
        def write(self, data):
            if self.stalled:
                return self.handle.write(data)
            self.stalled = True
            half = len(data) // 2
            written = self.handle.write(data[:half])
            self.handle.flush()
            stall()
            return written + self.handle.write(data[half:])
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()

    real_open = pathlib.Path.open
    def stalling_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return StallingFile(handle) if "w" in mode else handle

    if kind == "atomic_path":
        data = payloads.new_text().encode()
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                StallingFile(handle).write(data)
    elif kind in ("write_text", "write_json"):
        pathlib.Path.open = stalling_open  # Path.write_text writes through Path.open
        if kind == "write_text":
            atomic.write_text(target, payloads.new_text())
        else:
            atomic.write_json(target, payloads.new_json())
    elif kind == "write_csv":
        class StallOnStr:
            def __str__(self):
                stall()  # pandas formats (and writes) the frame chunk by chunk
                return f"row{payloads.CSV_STALL_ROW:06d}-released"
            __repr__ = __str__
        atomic.write_csv(target, payloads.csv_frame(StallOnStr()), chunksize=100)
    elif kind == "save_figure":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.artist import Artist

        class StallWhenDrawnToFile(Artist):
            def draw(self, renderer):
                pdf = getattr(getattr(renderer, "_renderer", renderer), "file", None)
                if pdf is None or isinstance(pdf.fh, io.BytesIO):
                    return  # the bbox_inches="tight" measuring pass draws into memory
                pdf.fh.flush()  # the header and earlier objects are now in the temp file
                stall()

        figure, axis = plt.subplots()
        axis.plot(range(1000), [i * i for i in range(1000)])
        figure.add_artist(StallWhenDrawnToFile())
        atomic.save_figure(target, figure)
    elif kind == "naive":  # control: not atomic at all
        with open(target, "wb") as handle:
            StallingFile(handle).write(payloads.new_text().encode())
    else:
        raise SystemExit(f"unknown kind {kind}")
    """
)


def run_child(tmp_path: Path, kind: str, target: Path, release: bool) -> tuple[int, str]:
    """Start the child, wait for READY (it is inside the write), then SIGKILL it or let it finish."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), kind, str(target), __file__],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    timer = threading.Timer(120, child.kill)  # never hang the suite if the child does not stall
    timer.start()
    try:
        line = child.stdout.readline().decode()
        if line.strip() != "READY":
            child.kill()
            child.wait()
            pytest.fail(f"{kind}: child never reached the stall point: {line!r} {child.stderr.read().decode()[-2000:]}")
        if release:
            child.stdin.close()
        else:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        return child.returncode, child.stderr.read().decode()
    finally:
        timer.cancel()
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def leftovers(folder: Path, name: str) -> list[Path]:
    """Everything in ``folder`` but the target itself."""
    return sorted(p for p in folder.iterdir() if p.name != name)


TEMP_NAME = r"^\.{name}\..+\.tmp$"


@pytest.mark.parametrize("old_exists", [True, False], ids=["old-file", "no-file"])
@pytest.mark.parametrize("kind", ["atomic_path", "write_text", "write_json", "write_csv", "save_figure"])
def test_sigkill_mid_write_leaves_old_file_or_none(tmp_path, kind, old_exists):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / TARGET_NAMES[kind]
    if old_exists:
        target.write_bytes(OLD)

    returncode, stderr = run_child(tmp_path, kind, target, release=False)

    assert returncode == -signal.SIGKILL, stderr[-2000:]
    if old_exists:
        assert target.read_bytes() == OLD, "the old file was changed by an interrupted write"
    else:
        assert not target.exists(), f"an interrupted write left {target.name} ({target.stat().st_size} bytes)"
    # the only other thing allowed is the writer's hidden temp file, and it really holds a partial write
    others = leftovers(folder, target.name)
    assert len(others) == 1, [p.name for p in others]
    assert re.match(TEMP_NAME.format(name=re.escape(target.name)), others[0].name), others[0].name
    partial = others[0].read_bytes()
    assert len(partial) > 0, "the child was killed before anything was written: not a mid-write crash"
    full = expected_new(kind)
    if full is not None:
        assert len(partial) < len(full) and full.startswith(partial)


def test_harness_control_naive_writer_leaves_half_a_file(tmp_path):
    """Without atomic_path the same kill leaves a truncated target: the harness kills mid-write."""
    target = tmp_path / TARGET_NAMES["naive"]
    target.write_bytes(OLD)
    returncode, stderr = run_child(tmp_path, "naive", target, release=False)
    assert returncode == -signal.SIGKILL, stderr[-2000:]
    full = expected_new("naive")
    content = target.read_bytes()
    assert content != OLD and 0 < len(content) < len(full) and full.startswith(content)


@pytest.mark.parametrize("kind", ["atomic_path", "write_text", "write_json", "write_csv", "save_figure"])
def test_released_writer_puts_the_complete_file_in_place(tmp_path, kind):
    """Same child, pipe closed instead of a kill: the whole new content replaces the old, no temp left."""
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / TARGET_NAMES[kind]
    target.write_bytes(OLD)
    returncode, stderr = run_child(tmp_path, kind, target, release=True)
    assert returncode == 0, stderr[-2000:]
    assert leftovers(folder, target.name) == []
    content = target.read_bytes()
    full = expected_new(kind)
    if full is not None:
        assert content == full
    else:
        assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")


# ---- Python exceptions inside the atomic block (in process) ----


class Boom(Exception):
    pass


@pytest.fixture
def old_target(tmp_path):
    def make(name: str) -> Path:
        folder = tmp_path / "out"
        folder.mkdir(exist_ok=True)
        target = folder / name
        target.write_bytes(OLD)
        return target

    return make


def assert_old_and_no_temp(target: Path):
    assert target.read_bytes() == OLD
    assert leftovers(target.parent, target.name) == []


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_path_exception_keeps_old_file_and_removes_temp(old_target, error):
    target = old_target("blob.bin")
    seen = []
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            seen.append(tmp)
            tmp.write_bytes(b"half")
            assert tmp.exists() and tmp.parent == target.parent
            raise error()
    assert not seen[0].exists()
    assert_old_and_no_temp(target)


def test_atomic_path_temp_removed_by_block_is_not_an_error(old_target):
    """A block that deletes (or renames away) its temp file and then fails still raises its own error."""
    target = old_target("blob.bin")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.unlink()
            raise Boom()
    assert_old_and_no_temp(target)


@pytest.mark.parametrize("writer", ["write_text", "write_json"])
def test_text_writers_exception_mid_write_keeps_old_file(old_target, monkeypatch, writer):
    target = old_target("report.txt")
    real_open = Path.open

    class FailingFile:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise Boom()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def failing_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return FailingFile(handle) if "w" in mode else handle

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(Boom):
        if writer == "write_text":
            write_text(target, new_text())
        else:
            write_json(target, new_json())
    monkeypatch.undo()
    assert_old_and_no_temp(target)


def test_write_json_unserialisable_data_keeps_old_file(old_target):
    target = old_target("metrics.json")
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert_old_and_no_temp(target)


def test_write_csv_exception_mid_write_keeps_old_file(old_target):
    target = old_target("table.csv")

    class FailOnStr:
        def __str__(self):
            raise Boom()

        __repr__ = __str__

    with pytest.raises(Boom):
        write_csv(target, csv_frame(FailOnStr()), chunksize=100)
    assert_old_and_no_temp(target)


def test_save_figure_exception_mid_draw_keeps_old_file(old_target):
    target = old_target("curve.pdf")

    class FailWhenDrawnToFile(Artist):
        def draw(self, renderer):
            pdf = getattr(getattr(renderer, "_renderer", renderer), "file", None)
            if pdf is not None and not isinstance(pdf.fh, io.BytesIO):  # drawing into the temp file
                raise Boom()

    figure, axis = plt.subplots()
    try:
        axis.plot([0, 1], [1, 0])
        figure.add_artist(FailWhenDrawnToFile())
        with pytest.raises(Boom):
            save_figure(target, figure)
    finally:
        plt.close(figure)
    assert_old_and_no_temp(target)


# ------------------------------------------------------------------------------------------------ check_writable
def test_a_new_folder_under_a_writable_one_passes_and_is_not_created(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


def test_a_folder_under_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"file.txt/out: cannot be written \(.*file.txt is a file, not a folder\)"):
        check_writable(tmp_path / "file.txt" / "out")
