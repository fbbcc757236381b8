"""Malformed requests never get a 500 and never stop the app; path tricks never read a file outside the index.

Through FastAPI's test client (in-process); ``test_serving_processes.py`` sends raw malformed HTTP to a real server."""

from __future__ import annotations

import io
import shutil
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.data.records import file_digest
from src.retrieval.build import index_from_embeddings
from src.serving.app import create_app
from tests.retrieval.worlds import random_probabilities
from tests.serving.worlds import SECRET, served_index  # noqa: F401

ROUTES = ["/", "/api/info", "/api/search/image", "/api/search/id/{}", "/api/search/description", "/api/attributes",
          "/api/images/{}", "/static/{}", "/docs", "/openapi.json", "/{}"]
PARAMS = ["top_k", "filter", "description", "rerank", "token", "file", "x"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@pytest.fixture(scope="module")
def client(served_index):  # noqa: F811
    app = create_app(served_index["index"], limits={"max_upload_bytes": 100_000, "max_pixels": 500_000})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def image_prefix(served, fraction: float) -> bytes:
    data = served["outside"].read_bytes()
    return data[: max(1, int(len(data) * fraction))]


@st.composite
def requests(draw):
    route = draw(st.sampled_from(ROUTES))
    segment = draw(st.one_of(st.integers(-2**70, 2**70).map(str), TEXT, st.sampled_from(["..", "%2e%2e", "0", "-1", "1e3"])))
    path = route.format(quote(segment, safe="%"))  # odd characters reach the server percent-encoded
    params = draw(st.dictionaries(st.sampled_from(PARAMS), st.one_of(TEXT, st.integers(-10**6, 10**6).map(str)), max_size=4))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    body = draw(st.sampled_from(["none", "bytes", "multipart", "image_prefix", "form"]))
    return method, path, params, body, draw(st.binary(max_size=300)), draw(st.floats(0.01, 1.0))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(request=requests())
def test_fuzzed_requests_never_get_a_500(client, served_index, request):  # noqa: F811
    method, path, params, body, blob, fraction = request
    kwargs = {"params": params}
    if body == "bytes":
        kwargs["content"] = blob
    elif body == "multipart":
        kwargs["files"] = {"file": ("x", blob)}
    elif body == "image_prefix":
        kwargs["files"] = {"file": ("x.jpg", image_prefix(served_index, fraction))}
        kwargs["data"] = {k: v for k, v in params.items() if k in ("top_k", "filter", "rerank")}
    elif body == "form":
        kwargs["data"] = params
    response = client.request(method, path, **kwargs)
    assert response.status_code < 500, (method, path, params, body, response.text[:300])
    assert "Traceback" not in response.text and SECRET not in response.text
    assert client.get("/api/info").status_code == 200  # still serving


def test_a_corrupt_image_the_header_accepts_is_a_400_not_a_500(client, served_index):  # noqa: F811
    data = bytearray(served_index["outside"].read_bytes())
    rng = np.random.default_rng(0)
    for _ in range(20):
        corrupt = bytearray(data)
        positions = rng.integers(0, len(corrupt), 30)
        for p in positions:
            corrupt[p] = int(rng.integers(0, 256))
        response = client.post("/api/search/image", files={"file": ("x.jpg", bytes(corrupt))})
        assert response.status_code in (200, 400, 415), response.text
    gif = io.BytesIO()
    from PIL import Image

    Image.new("P", (40, 80)).save(gif, format="GIF")  # an odd but valid format
    assert client.post("/api/search/image", files={"file": ("x.gif", gif.getvalue())}).status_code == 200


TRICKS = ["/api/images/..%2F..%2Fsecret.txt", "/api/images/%2e%2e%2fsecret.txt", "/api/images/1%2F..%2F..%2Fsecret.txt",
          "/static/..%2F..%2F..%2F..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
          "/static/....//....//secret.txt", "/api/images/0?path=../secret.txt", "/api/images/0%00",
          "/static/%2Fetc%2Fpasswd", "/static//etc/passwd", "/api/images/%2Fetc%2Fpasswd",
          "/api/search/id/..%2F..%2Fsecret.txt", "/api/images/1e2", "/api/images/0x1", "/api/images/1.5"]


def test_path_tricks_never_read_outside_the_index(client, served_index):  # noqa: F811
    for url in TRICKS:
        response = client.get(url)
        assert SECRET not in response.text and "root:" not in response.text, url
        assert response.status_code in (200, 404, 422, 400, 405), (url, response.status_code)
        if url.startswith("/api/images/0?"):
            assert response.status_code == 200  # the extra parameter is ignored: image 0, not the path
    assert served_index["secret"].read_text() == SECRET  # the secret is there to be read, and was not


def test_records_naming_a_file_outside_the_gallery_are_refused(tmp_path, served_index):  # noqa: F811
    """An index whose records were tampered with to name files outside its gallery folder still serves nothing
    outside it."""
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copyfile(served_index["outside"], gallery / "ok.jpg")
    (tmp_path / "secret.txt").write_text(SECRET)
    names = ["ok.jpg", "../secret.txt", str(tmp_path / "secret.txt"), "sub/../../secret.txt", "a\\..\\..\\secret.txt"]
    hashes = [file_digest(gallery / "ok.jpg"), *(file_digest(tmp_path / "secret.txt") for _ in names[1:])]
    index_from_embeddings(tmp_path / "index", np.eye(len(names), 4, dtype=np.float32), names,
                          random_probabilities(len(names)), gallery=str(gallery), sha256=hashes)
    with TestClient(create_app(tmp_path / "index"), raise_server_exceptions=False) as client:
        assert client.get("/api/images/0").status_code == 200
        for image_id in range(1, len(names)):
            response = client.get(f"/api/images/{image_id}")
            assert response.status_code == 404 and SECRET not in response.text, names[image_id]
        assert client.get("/api/info").json()["searchable_by_image"] is False
        response = client.post("/api/search/image", files={"file": ("q.jpg", (gallery / "ok.jpg").read_bytes())})
        assert response.status_code == 400 and "checkpoint" in response.json()["detail"]
