"""The JSON API through FastAPI's test client on a tiny index of the shared data: search by upload equals the
command-line search, by id, by description, attributes of an upload, images by id; bad uploads get a clear 4xx;
the token; the OpenAPI page."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from omegaconf import OmegaConf
from PIL import Image

from src.data.attributes import HEAD_NAMES, HEADS
from src.errors import ConfigError
from src.metrics.rerank import re_ranking_from_features
from src.retrieval.describe import description_scores
from src.retrieval.filtering import parse_filter
from src.retrieval.search import search
from src.retrieval.store import load_index
from src.serve import app_config
from src.serving.app import create_app
from tests.serving.worlds import served_index  # noqa: F401


@pytest.fixture(scope="module")
def client(served_index):  # noqa: F811
    with TestClient(create_app(served_index["index"]), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def index(served_index):  # noqa: F811
    return load_index(served_index["index"])


def upload(client, path_or_bytes, **form):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return client.post("/api/search/image", files={"file": ("q.jpg", data, "image/jpeg")},
                       data={k: str(v) for k, v in form.items()})


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["name"] for m in response.json()["matches"]]


def test_info_and_the_openapi_page(client, index):
    info = client.get("/api/info").json()
    assert info["images"] == len(index) == 32 and info["searchable_by_image"]
    assert info["attributes"] == {h.name: list(h.classes) for h in HEADS}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search/image", "/api/search/id/{image_id}", "/api/search/description", "/api/attributes",
            "/api/images/{image_id}", "/api/info"} <= set(paths)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # served from this server's files, no CDN: it works offline
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", docs.text)
    assert assets and not [a for a in assets if "//" in a], assets
    for asset in assets:
        assert client.get(f"/{asset}").status_code == 200, asset
    assert info["labels"]["down"]["label"] == "length of lower-body clothing"
    assert info["labels"]["down"]["phrases"]["long_lower"] == "long lower-body clothing"
    assert info["labels"]["upcolor"]["values"]["multicolor"] == "several colours"
    page = client.get("/")
    assert page.status_code == 200 and "static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("query", ["outside", "gallery"])
def test_search_by_upload_equals_the_command_line_search(client, index, served_index, query):  # noqa: F811
    path = served_index["outside"] if query == "outside" else served_index["gallery"] / "course" / "000003.jpg"
    expected = search(index, path, top_k=6)
    response = upload(client, path, top_k=6)
    body = response.json()
    assert names(response) == [index.names[r] for r, _ in expected.matches[0]]
    np.testing.assert_allclose([m["distance"] for m in body["matches"]], [d for _, d in expected.matches[0]], rtol=1e-4)
    if query == "gallery":  # its own copy is left out, as on the command line
        assert "course/000003.jpg" not in names(response) and len(body["query"]["own_copies"]) == 1
    assert body["timing_ms"]["total"] >= body["timing_ms"]["embed"] > 0
    for match in body["matches"]:
        assert match["attributes"] == {h: str(index.records.iloc[int(index.rows_of(np.array([match["id"]]))[0])][h])
                                       for h in HEAD_NAMES}
    assert {m["camera"] for m in body["matches"] if "/" not in m["name"]} <= {1, 2, 3, 4, 5, 6}


def test_filter_keeps_only_matching_predicted_attributes(client, index, served_index):  # noqa: F811
    gender = index.records["gender"].astype(str)
    value = gender.mode()[0]
    response = upload(client, served_index["outside"], top_k=50, filter=f"gender={value}")
    assert len(names(response)) == int((gender == value).sum()) == response.json()["passing"]
    assert all(m["attributes"]["gender"] == value for m in response.json()["matches"])
    bad = upload(client, served_index["outside"], filter="colour=red")
    assert bad.status_code == 400 and "unknown attribute 'colour'" in bad.json()["detail"]


def test_search_from_a_gallery_id_leaves_the_image_out(client, index):
    row = 5
    image_id = int(index.ids[row])
    expected = search(index, index.path(index.names[row]), top_k=4)
    response = client.get(f"/api/search/id/{image_id}", params={"top_k": 4})
    assert names(response) == [index.names[r] for r, _ in expected.matches[0]]
    assert index.names[row] not in names(response)
    assert client.get("/api/search/id/99999").status_code == 404
    assert client.get("/api/search/id/abc").status_code == 422


def test_rerank_toggle_equals_a_dense_k_reciprocal_re_ranking(client, index):
    row = 2
    gallery = torch.from_numpy(np.asarray(index.embeddings).copy())
    dense = re_ranking_from_features(gallery[[row]], gallery, index.metric)[0]
    dense[row] = float("inf")  # its own copy
    expected = [index.names[i] for i in np.argsort(np.asarray(dense), kind="stable")[:5]]
    response = client.get(f"/api/search/id/{int(index.ids[row])}", params={"top_k": 5, "rerank": "true"})
    assert names(response) == expected and response.json()["rerank"] is True


def test_description_ranks_by_the_product_of_predicted_probabilities(client, index):
    description = "gender=female,backpack=no"
    scores = description_scores(index.probabilities, parse_filter(description))
    expected = [index.names[i] for i in np.lexsort((np.arange(len(scores)), -scores))[:7]]
    response = client.get("/api/search/description", params={"description": description, "top_k": 7})
    assert names(response) == expected
    values = [m["score"] for m in response.json()["matches"]]
    assert values == sorted(values, reverse=True) and all(m["distance"] is None for m in response.json()["matches"])
    bad = client.get("/api/search/description", params={"description": "gender=robot"})
    assert bad.status_code == 400 and "valid values: male, female" in bad.json()["detail"]
    assert response.json()["query"]["readable"] == "woman, no backpack"


def test_free_text_is_parsed_into_the_description_and_shown_back(client, index):
    text = client.get("/api/search/description", params={"text": "a woman, sparkly, without backpack", "top_k": 7}).json()
    same = client.get("/api/search/description", params={"description": "gender=female,backpack=no", "top_k": 7}).json()
    assert text["matches"] == same["matches"]
    assert text["query"] == {"description": "gender=female,backpack=no", "text": "a woman, sparkly, without backpack",
                             "understood": [{"words": "woman", "meaning": "woman"},
                                            {"words": "without backpack", "meaning": "no backpack"}],
                             "unknown": ["sparkly"], "readable": "woman, no backpack"}
    nothing = client.get("/api/search/description", params={"text": "sparkly red"})
    assert nothing.status_code == 400 and nothing.json()["detail"] == (
        "nothing understood in 'sparkly red' (not understood: sparkly; red (a colour of what? e.g. red top, red "
        'trousers)); try e.g. "woman, red top, black trousers, backpack"')
    for params in ({}, {"text": "woman", "description": "gender=female"}):
        answer = client.get("/api/search/description", params=params)
        assert answer.status_code == 400 and "one of the two" in answer.json()["detail"]


def test_paging_continues_the_ranking(client, index):
    image_id = int(index.ids[4])
    whole = client.get(f"/api/search/id/{image_id}", params={"top_k": 12}).json()["matches"]
    pages = [client.get(f"/api/search/id/{image_id}", params={"top_k": 5, "offset": offset}).json() for offset in (0, 5, 10)]
    assert [page["offset"] for page in pages] == [0, 5, 10]
    assert [m for page in pages for m in page["matches"]][:12] == whole and whole[5]["rank"] == 6
    assert len(pages[2]["matches"]) == 5 and pages[2]["matches"][0]["rank"] == 11
    described = [client.get("/api/search/description", params={"description": "hat=no", "top_k": 4, "offset": offset}).json()
                 for offset in (0, 4)]
    assert [m["id"] for page in described for m in page["matches"]] == [
        m["id"] for m in client.get("/api/search/description", params={"description": "hat=no", "top_k": 8}).json()["matches"]]
    photo = [upload(client, index.path(index.names[4]), top_k=3, offset=offset).json()["matches"] for offset in (0, 3)]
    assert [m["name"] for m in photo[0] + photo[1]] == [m["name"] for m in whole[:6]]
    past = client.get(f"/api/search/id/{image_id}", params={"top_k": 200, "offset": 900})
    assert past.status_code == 400 and "past rank 1000, the deepest this server pages to" in past.json()["detail"]


def test_attributes_of_an_upload_are_the_indexed_ones(client, index):
    row = 9
    response = client.post("/api/attributes", files={"file": ("x.jpg", index.path(index.names[row]).read_bytes())})
    assert response.status_code == 200, response.text
    attributes = response.json()["attributes"]
    stored = index.probabilities
    for name in HEAD_NAMES:
        assert attributes[name]["class"] == str(index.records[name].iloc[row])
        np.testing.assert_allclose(list(attributes[name]["probabilities"].values()), stored[name][row], atol=2e-4)


def test_images_are_served_by_id_only(client, index):
    image_id = int(index.ids[3])
    response = client.get(f"/api/images/{image_id}")
    assert response.status_code == 200 and response.content == index.path(index.names[3]).read_bytes()
    assert client.get("/api/images/123456").status_code == 404
    assert client.get("/api/images/-1").status_code == 404


def png_bytes(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_bad_uploads_get_a_clear_4xx(served_index):  # noqa: F811
    app = create_app(served_index["index"], limits={"max_upload_bytes": 200_000, "max_pixels": 1_000_000})
    good = served_index["outside"].read_bytes()
    cases = {
        "empty": (b"", 400, "empty upload"),
        "text": (b"hello, I am not an image\n" * 10, 415, "not an image"),
        "truncated": (good[: len(good) // 2], 400, "cannot be decoded"),
        "huge pixels": (png_bytes(1200, 1000), 413, "1200x1000 = 1200000 pixels is over the limit of 1000000"),
        "huge bytes": (good + b"\0" * 300_000, 413, "over the upload limit of 200000 bytes"),
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        for name, (data, status, message) in cases.items():
            for route in ("/api/search/image", "/api/attributes"):
                response = client.post(route, files={"file": ("x.jpg", data)})
                assert response.status_code == status, (name, route, response.text)
                assert message in response.json()["detail"], (name, response.text)
                assert "Traceback" not in response.text and "/tmp" not in response.json()["detail"]
                assert " object at 0x" not in response.text
        text = client.post("/api/search/image", files={"file": ("notes.jpg", b"hello, I am not an image")}).json()["detail"]
        assert text == "notes.jpg: not an image this server reads (JPEG, PNG, BMP, WebP, ...): no image format starts with b'hello, I am '"
        assert client.post("/api/search/image").status_code == 422  # no file
        assert upload(client, good, top_k=0).status_code == 422
        assert upload(client, good, top_k=5).status_code == 200  # still serving


def test_token_is_required_on_every_request_when_set(served_index):  # noqa: F811
    token = "s3cret-token-0123456789"
    with TestClient(create_app(served_index["index"], token=token), raise_server_exceptions=False) as client:
        for path in ("/", "/api/info", "/docs", "/openapi.json", "/static/app.js", "/api/images/0"):
            assert client.get(path).status_code == 401, path
        assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get(f"/?token={token}").status_code == 200  # sets the cookie the page's own requests carry
        assert client.get("/api/info").status_code == 200
    with TestClient(create_app(served_index["index"], token=token)) as client:
        assert client.get("/api/info", params={"token": token}).status_code == 200


def test_another_address_needs_a_token(served_index, monkeypatch):  # noqa: F811
    monkeypatch.delenv("MPR_SERVE_TOKEN", raising=False)
    cfg = OmegaConf.load("conf/serve.yaml")
    cfg.index = str(served_index["index"])
    assert app_config(cfg)["token"] is None  # 127.0.0.1: no token needed
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        cfg.host = host
        with pytest.raises(ConfigError, match=f"host={host} exposes the server.*token=SECRET"):
            app_config(cfg)
    cfg.token = "short"
    with pytest.raises(ConfigError, match="at least 16 characters"):
        app_config(cfg)
    cfg.token = "a-long-enough-token-123"
    assert app_config(cfg)["token"] == "a-long-enough-token-123"
    cfg.host, cfg.token = "::1", None
    assert app_config(cfg)["token"] is None


CALIBRATION = {"method": "isotonic", "distance": [0.0, 0.3, 0.6, 2.0], "p_same": [1.0, 0.7, 0.1, 0.0],
               "operating_points": {"far_0.01": {"far": 0.01, "tar": 0.7, "threshold": 0.35}}}


def test_matches_and_compare_answer_with_the_calibrated_probability(served_index, monkeypatch):  # noqa: F811
    from src.metrics.verification import p_same

    monkeypatch.setattr("src.models.loading.Contract.calibration", lambda self, mode="plain": CALIBRATION)
    gallery = served_index["gallery"] / "course" / "000003.jpg"
    with TestClient(create_app(served_index["index"]), raise_server_exceptions=False) as client:
        plain = upload(client, served_index["outside"], top_k=5).json()["matches"]
        assert [m["p_same"] for m in plain] == pytest.approx(list(p_same(CALIBRATION, [m["distance"] for m in plain])), abs=1e-4)
        reranked = upload(client, served_index["outside"], top_k=5, rerank="true").json()["matches"]
        by_id = {m["id"]: m["p_same"] for m in plain}
        assert all(m["p_same"] == pytest.approx(by_id[m["id"]], abs=1e-4) for m in reranked if m["id"] in by_id)
        files = {"first": ("a.jpg", served_index["outside"].read_bytes()), "second": ("b.jpg", gallery.read_bytes())}
        answer = client.post("/api/compare", files=files, data={"far": "0.01"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["p_same"] == pytest.approx(float(p_same(CALIBRATION, [body["distance"]])[0]))
        assert body["same"] == (body["distance"] <= 0.35) and body["threshold"] == 0.35
        same = client.post("/api/compare", files={"first": files["second"], "second": files["second"]}).json()
        assert same["distance"] == pytest.approx(0, abs=1e-2) and same["same"] and same["p_same"] == pytest.approx(1, abs=1e-2)
        unknown = client.post("/api/compare", files=files, data={"far": "0.05"})
        assert unknown.status_code == 400 and "far=0.05: no operating point" in unknown.json()["detail"]
        bad = client.post("/api/compare", files={"first": files["first"], "second": ("c.jpg", b"not an image")})
        assert bad.status_code == 415 and "not an image" in bad.json()["detail"]
        assert client.post("/api/compare", files={"first": files["first"]}).status_code == 422


def test_an_uncalibrated_network_answers_distances_only(client, served_index):  # noqa: F811
    assert all(m["p_same"] is None for m in upload(client, served_index["outside"], top_k=3).json()["matches"])
    image = served_index["outside"].read_bytes()
    body = client.post("/api/compare", files={"first": ("a.jpg", image), "second": ("b.jpg", image)}).json()
    assert body["p_same"] is None and body["same"] is None and body["distance"] == pytest.approx(0, abs=1e-2)


def test_the_rerank_toggle_ranks_as_src_search_with_conf_postprocess(served_index, index):  # noqa: F811
    """One ranking function: the app's toggle and src.search give the same list for the same postprocess settings."""
    settings = {"rerank": {"enabled": False, "k1": 6, "k2": 3, "lambda_value": 0.5},
                "query_expansion": {"enabled": False, "top_k": 5, "alpha": 3.0, "expand_gallery": False}}
    with TestClient(create_app(served_index["index"], postprocess=settings), raise_server_exceptions=False) as client:
        response = upload(client, served_index["outside"], top_k=6, rerank="true")
    on = {**settings, "rerank": {**settings["rerank"], "enabled": True}}
    expected = search(index, served_index["outside"], top_k=6, postprocess=on)
    assert names(response) == [index.names[r] for r, _ in expected.matches[0]]
    np.testing.assert_allclose([m["distance"] for m in response.json()["matches"]], [d for _, d in expected.matches[0]],
                               rtol=1e-4)
