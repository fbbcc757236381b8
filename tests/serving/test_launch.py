"""src/serving/launch.py: a free local port, and ``running_server``'s start-up / stop protocol (the process and the
HTTP probe replaced by fakes here: the real server runs in tests/serving/test_serving_processes.py)."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest

import src.serving.launch as launch


def test_a_free_port_can_be_bound_on_localhost():
    port = launch.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


class FakeServer:
    """A server process that has ended with ``returncode`` (None: still running)."""

    def __init__(self, returncode=None):
        self.pid, self.returncode, self.waited = 424242, returncode, []

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.waited.append(timeout)


@pytest.fixture
def fake(monkeypatch):
    """The command started, the signals sent to its process group and the probes made, as recorded by fakes."""
    record = {"command": None, "signals": [], "probes": [], "server": FakeServer(), "answers": []}

    def popen(command, **kwargs):
        record["command"] = command
        kwargs["stdout"].write("server log line\n")
        return record["server"]

    def get(url, **kwargs):
        record["probes"].append(url)
        answer = record["answers"].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    monkeypatch.setattr(launch.os, "killpg", lambda pid, sig: record["signals"].append((pid, sig)))
    monkeypatch.setattr(launch.httpx, "get", get)
    monkeypatch.setattr(launch.time, "sleep", lambda seconds: None)
    return record


def test_the_server_is_used_once_its_info_route_answers_and_interrupted_after(fake, tmp_path):
    fake["answers"] = [httpx.ConnectError("refused"), 401]  # starting, then up (with a token)
    with launch.running_server(["index=idx", "token=t"], tmp_path / "server.log") as (url, process):
        port = int(url.rsplit(":", 1)[1])
        assert url == f"http://127.0.0.1:{port}" and process is fake["server"]
        assert fake["command"][-3:] == ["index=idx", "token=t", f"port={port}"] and fake["command"][1:3] == ["-m", "src.serve"]
        assert fake["probes"] == [f"{url}/api/info"] * 2 and fake["signals"] == []
    assert fake["signals"] == [(424242, signal.SIGINT)] and fake["server"].waited == [30]


def test_a_server_that_ends_at_start_up_is_an_error_with_its_log(fake, tmp_path):
    fake["server"] = FakeServer(returncode=3)
    with pytest.raises(RuntimeError, match=r"the server ended with status 3: server log line"):
        with launch.running_server([], tmp_path / "server.log"):
            pytest.fail("the block must not run")
    assert fake["signals"] == [(424242, signal.SIGINT)]  # its process group is stopped all the same


def test_a_server_that_never_answers_times_out(fake, tmp_path):
    fake["answers"] = [httpx.ConnectError("refused")] * 3
    with pytest.raises(TimeoutError, match=r"the server did not answer in 0 s: server log line"):
        with launch.running_server([], tmp_path / "server.log", timeout=0):
            pytest.fail("the block must not run")
