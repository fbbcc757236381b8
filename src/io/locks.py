"""Exclusive, non-blocking file locks for folders that one process writes at a time (run folders, index folders)."""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

ORPHAN_WAIT_S = 30.0  # how long a lock whose holder process is gone may stay held by that process's leftover children


class Locked(Exception):
    """The lock is held by another live process; ``holder`` is the note it wrote."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def take_lock(path: str | Path, note: str):
    """Open ``path``, take an exclusive ``flock`` without waiting and write ``note`` (who holds it) into it.

    Returns the open handle: the lock lasts until it is closed or the process ends, even by SIGKILL (its forked
    children hold it until they exit too: when the note's process is gone, this waits up to ``ORPHAN_WAIT_S`` for
    them). Raises Locked with the holder's note when another process holds it.
    """
    handle = open(path, "a+")
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            # a killed holder's forked children (e.g. data-loader workers) share its lock until they notice and exit
            if _dead(holder) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            handle.close()
            raise Locked(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{note}\n")
    handle.flush()
    return handle


def _dead(holder: str) -> bool:
    """The note names a process id (``take_lock``'s callers write theirs) that no longer runs."""
    found = re.match(r"(?:\d+$|.*\bpid (\d+)\b)", holder)
    pid = (found.group(1) or holder) if found else ""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
