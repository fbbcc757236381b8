"""``python -m src.serve`` as a child process on 127.0.0.1 and a free port, up until the block ends: for the
tests, the README-commands test and the load benchmark."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(arguments: list[str], log: Path, *, timeout: float = 600, headers: dict | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process) of ``python -m src.serve ARGUMENTS port=FREE`` once ``/api/info`` answers (200, or 401
    with a token); stopped (SIGINT to its process group, then SIGKILL) when the block ends."""
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "src.serve", *arguments, f"port={port}"], cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server ended with status {server.returncode}: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/info", headers=headers, timeout=5).status_code in (200, 401):
                    break
            except httpx.TransportError:
                time.sleep(1)
        yield url, server
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
