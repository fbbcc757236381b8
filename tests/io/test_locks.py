"""src/io/locks.py: one writer per folder; a killed holder's leftover children (data-loader workers forked while it
held the lock) delay the next taker only until they exit, and a live holder is refused at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from src.io.locks import Locked, take_lock

HOLD = """
import os, sys, time
sys.path.insert(0, {root!r})
from src.io.locks import take_lock
handle = take_lock({path!r}, str(os.getpid()))
child = os.fork()
if child == 0:          # a forked worker: shares the lock, outlives its parent by {linger} s
    time.sleep({linger})
    os._exit(0)
print("locked", flush=True)
time.sleep(60)
"""


def holder(path, linger: float) -> subprocess.Popen:
    from tests.conftest import ROOT

    process = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT), path=str(path), linger=linger)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_live_holder_is_refused_at_once_naming_its_pid(tmp_path):
    process = holder(tmp_path / ".lock", linger=0.1)
    try:
        with pytest.raises(Locked) as refused:
            take_lock(tmp_path / ".lock", "me")
        assert refused.value.holder == str(process.pid)
    finally:
        process.kill()
        process.wait()


def test_a_killed_holders_leftover_child_delays_the_lock_until_it_exits(tmp_path):
    process = holder(tmp_path / ".lock", linger=2.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    handle = take_lock(tmp_path / ".lock", "next run")  # the child still holds it for ~2 s: without the wait, Locked
    assert (tmp_path / ".lock").read_text().strip() == "next run"
    handle.close()
