"""The real server: ``python -m src.serve`` with 2 uvicorn workers on one index folder while a build updates it
(every request answered, both workers move to the new generation), and raw malformed HTTP that never stops it."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import httpx
import pytest

from src.retrieval.build import build_index
from src.serving.launch import running_server
from tests.conftest import COURSE, SAMPLES
from tests.retrieval.worlds import HEIGHT, WIDTH
from tests.serving.worlds import make_served_index

pytestmark = pytest.mark.skipif(not (COURSE.is_dir() and SAMPLES.is_dir()),
                                reason=f"real Market-1501 data not found at {COURSE.parent}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for this file's tests (the malformed-request test needs only a live one)."""
    folder = tmp_path_factory.mktemp("served")
    world = make_served_index(folder, num_course=10)
    # 2 workers importing torch at nice 19 beside two trainings: minutes
    with running_server([f"index={world['index']}", "workers=2", "reload_every=0.2"], folder / "server.log") as (url, proc):
        yield {**world, "url": url, "proc": proc}


def workers_answering(url: str, count: int, timeout: float = 600) -> set[str]:
    """Worker pids seen answering fresh connections, once ``count`` of them have (the second may still be starting)."""
    pids, deadline = set(), time.monotonic() + timeout
    while len(pids) < count:
        assert time.monotonic() < deadline, f"only workers {pids} answered in {timeout:.0f} s"
        response = httpx.get(f"{url}/api/info", headers={"Connection": "close"}, timeout=60)
        pids.add(response.headers["x-served-by"])
    return pids


def test_two_workers_serve_while_a_build_updates_the_index(server):
    url, gallery = server["url"], server["gallery"]
    workers_answering(url, 2)
    before = httpx.get(f"{url}/api/info").json()
    statuses, seen = [], {}  # seen: worker pid -> [(generation, images)]
    stop = threading.Event()

    def client():
        while not stop.is_set():  # a new connection per request: the kernel spreads them over both workers
            for path, params in (("/api/info", {}), ("/api/search/description", {"description": "gender=female"}),
                                 ("/api/search/id/0", {"top_k": 5})):
                response = httpx.get(f"{url}{path}", params=params, headers={"Connection": "close"}, timeout=60)
                statuses.append(response.status_code)
                if path == "/api/info" and response.status_code == 200:
                    body = response.json()
                    seen.setdefault(response.headers["x-served-by"], []).append((body["generation"], body["images"]))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    # the gallery changes: 2 removed, 3 added; the build runs while the workers answer
    for path in sorted((gallery / "course").iterdir())[:2]:
        path.unlink()
    for number, path in enumerate(sorted((COURSE / "queries").iterdir())[:3]):
        shutil.copyfile(path, gallery / f"new_{number}.jpg")
    report = build_index(server["ckpt"], gallery, server["index"], height=HEIGHT, width=WIDTH, batch_size=16)
    assert report.total == before["images"] + 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = {pid: values[-1] for pid, values in list(seen.items())}
        if len(latest) == 2 and all(images == before["images"] + 1 for _, images in latest.values()):
            break
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert len(seen) == 2, f"answers from {len(seen)} worker(s), expected 2"
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    for pid, values in seen.items():  # a worker the kernel gave no connection before the commit is seen only after it
        counts = [images for _, images in values]
        switched = [i for i in range(1, len(values)) if values[i] != values[i - 1]]
        assert len(switched) <= 1, f"worker {pid} changed generation {len(switched)} times (it must never go back)"
        assert counts[-1] == before["images"] + 1 and counts[0] == before["images"] + (not switched), (pid, counts)
    assert any(values[0][1] == before["images"] for values in seen.values())  # the old generation was served too
    response = httpx.get(f"{url}/api/search/description", params={"description": "hat=no", "top_k": 50})
    assert {m["name"] for m in response.json()["matches"]} >= {"new_0.jpg", "new_1.jpg", "new_2.jpg"}


RAW = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"GET /api/info HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
       b"POST /api/search/image HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\nabc",
       b"POST /api/search/image HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       b"POST /api/attributes HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=--x\r\n"
       b"Content-Length: 40\r\n\r\n----x\r\nContent-Disposition: form-data\r\n",
       b"GET /" + b"A" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /api/info HTTP/1.1\r\n" + b"X: " + b"y" * 100_000 + b"\r\n\r\n",
       b"\x00\xff\xfe" * 100, b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
       b"GET /static/../../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /api/images/0 HTTP/1.0\r\n\r\n",
       b"GET /api/info HTTP/1.1\r\nHost: x\r\n"]  # the last one never ends its headers


def test_raw_malformed_http_never_stops_the_server(server):
    host, port = server["url"].removeprefix("http://").split(":")
    for payload in RAW * 2:
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            try:
                connection.sendall(payload)
                connection.shutdown(socket.SHUT_WR)
                answer = connection.recv(65536)
            except OSError:  # the server may close a connection it will not read
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 5") and b"Traceback" not in answer, (payload[:60], answer[:200])
        assert b"TOP-SECRET" not in answer and b"root:" not in answer
    assert server["proc"].poll() is None
    assert httpx.get(f"{server['url']}/api/info", timeout=10).status_code == 200
