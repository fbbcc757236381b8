"""Exclusive, non-blocking file locks for folders that one process writes at a time (run folders, index folders)."""

from __future__ import annotations

import fcntl
from pathlib import Path


class Locked(Exception):
    """The lock is held by another live process; ``holder`` is the note it wrote."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def take_lock(path: str | Path, note: str):
    """Open ``path``, take an exclusive ``flock`` without waiting and write ``note`` (who holds it) into it.

    Returns the open handle: the lock lasts until it is closed or the process ends, even by SIGKILL.
    Raises Locked with the holder's note when another process holds it.
    """
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise Locked(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{note}\n")
    handle.flush()
    return handle
