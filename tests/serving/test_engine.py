"""src/serving/engine.py: uploads checked (size, then header pixels, then a full decode) with the HTTP status and a
message naming the problem, decoded exactly as gallery images are; the served index's queries by gallery id."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.attributes import HEADS
from src.data.datasets import decode_resized
from src.retrieval.store import load_index
from src.serving.engine import Engine, Limits, UploadError, check_upload, decode_upload, predicted
from tests.retrieval.worlds import build, gallery, world  # noqa: F401  (fixtures)
from tests.serving.worlds import served_index  # noqa: F401  (fixture)


def encoded(width: int, height: int, format: str = "PNG", seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=format)
    return out.getvalue()


@pytest.mark.parametrize("data, limits, status, message", [
    (b"", Limits(), 400, "empty upload: the file has 0 bytes"),
    (b"x" * 101, Limits(max_upload_bytes=100), 413, "upload of 101 bytes is over the limit of 100 bytes"),
    (b"hello, I am not an image", Limits(), 415, "not an image this server reads (JPEG, PNG, BMP, WebP, ...)"),
    (encoded(40, 30), Limits(max_pixels=1000), 413, "PNG image of 40x30 = 1200 pixels is over the limit of 1000 pixels"),
])
def test_a_bad_upload_gets_its_status_and_a_message_naming_the_problem(data, limits, status, message):
    with pytest.raises(UploadError) as error:
        check_upload(data, limits)
    assert error.value.status == status and message in str(error.value)


def test_an_upload_within_the_limits_gives_its_size():
    assert check_upload(encoded(40, 30, "JPEG"), Limits(max_pixels=1200)) == (40, 30)


def test_an_upload_is_decoded_exactly_as_a_gallery_file(tmp_path):
    data = encoded(20, 50, "JPEG", seed=1)
    (tmp_path / "gallery.jpg").write_bytes(data)
    image = decode_upload(data, 64, 32, Limits())
    assert image.dtype == torch.float32 and image.shape == (3, 64, 32)
    torch.testing.assert_close(image, decode_resized(tmp_path / "gallery.jpg", 64, 32).float() / 255)


def test_a_truncated_upload_is_a_400_without_the_temporary_path():
    data = encoded(64, 64, "JPEG")
    with pytest.raises(UploadError) as error:
        decode_upload(data[: len(data) // 2], 64, 32, Limits())
    assert error.value.status == 400 and "cannot be decoded (truncated or corrupt)" in str(error.value)
    assert "upload_" not in str(error.value) and "/tmp" not in str(error.value)


def test_predicted_names_the_top_class_and_rounds_every_probability():
    probabilities = {h.name: np.full((2, h.num_classes), 0.1 / h.num_classes) for h in HEADS}
    probabilities["gender"][0] = [0.123456, 0.876544]
    probabilities["age"][0] = [0.1, 0.2, 0.6, 0.1]
    out = predicted(probabilities)
    assert out["gender"] == {"class": "female", "probabilities": {"male": 0.1235, "female": 0.8765}}
    assert out["age"]["class"] == "adult" and list(out) == [h.name for h in HEADS]


def test_a_search_from_a_gallery_id_leaves_that_image_out_and_ids_map_to_gallery_files(served_index):  # noqa: F811
    engine = Engine(served_index["index"])
    index = engine.served.index
    result = engine.search_row(0, top_k=len(index))
    rows = [row for row, _ in result["matches"]]
    copies = int((index.sha256 == index.sha256[0]).sum())  # row 0 and any byte-identical file: all left out
    assert 0 not in rows and len(rows) == len(index) - copies and result["passing"] == len(index)
    distances = [d for _, d in result["matches"]]
    assert distances == sorted(distances)
    image_id = int(index.ids[3])
    assert engine.image_path(image_id) == index.path(str(index.names[3])) and engine.image_path(image_id).is_file()
    with pytest.raises(KeyError, match="no image with id"):
        engine.image_path(int(index.ids.max()) + 1000)


@pytest.fixture
def indexed(world, gallery, tmp_path):  # noqa: F811
    """(gallery, index folder, a secret file beside them) of a tiny synthetic gallery."""
    build(world, gallery, tmp_path / "index")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET outside the gallery")
    return gallery, tmp_path / "index", secret


def app_client(folder, base_url: str = "http://testserver", **options):
    """The app over the index ``folder`` through FastAPI's test client (a 500 answers, it does not raise)."""
    from fastapi.testclient import TestClient

    from src.serving.app import create_app

    return TestClient(create_app(folder, **options), base_url=base_url, raise_server_exceptions=False)


def test_a_gallery_file_swapped_after_indexing_is_not_served(indexed, caplog):
    gallery, folder, secret = indexed
    client = app_client(folder)
    index = load_index(folder)
    image_id, name, other = int(index.ids[0]), str(index.names[0]), gallery / str(index.names[1])
    original = (gallery / name).read_bytes()
    assert client.get(f"/api/images/{image_id}").content == original
    for swapped_in in (secret, other):  # a link out of the gallery, a link to another gallery image
        (gallery / name).unlink()
        (gallery / name).symlink_to(swapped_in)
        with caplog.at_level("WARNING", logger="src.serving.engine"):
            response = client.get(f"/api/images/{image_id}")
        assert response.status_code == 404 and b"SECRET" not in response.content and str(secret) not in response.text
        assert f"image {image_id} ({name}) not served" in caplog.text
    (gallery / name).unlink()
    (gallery / name).write_bytes(original[:-10] + b"0123456789")  # same size, other bytes
    assert client.get(f"/api/images/{image_id}").status_code == 404
    (gallery / name).write_bytes(original)
    assert client.get(f"/api/images/{image_id}").content == original


def test_a_manifest_edited_to_another_gallery_serves_nothing_from_it(indexed, tmp_path):
    import json

    gallery, folder, secret = indexed
    index = load_index(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in index.names:  # files of the recorded names, other bytes (as /etc/passwd for a record "passwd")
        (elsewhere / str(name)).write_text("TOP-SECRET")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "gallery": str(elsewhere)}))
    client = app_client(folder)
    for image_id in index.ids:
        response = client.get(f"/api/images/{image_id}")
        assert response.status_code == 404 and "is not available from the gallery folder" in response.json()["detail"]


def test_an_id_beyond_int64_is_a_404_not_a_500(indexed):
    client = app_client(indexed[1])
    for path in ("/api/search/id/99999999999999999999999999", "/api/images/99999999999999999999999999",
                 f"/api/search/id/{2**63}", "/api/search/id/-99999999999999999999999999"):
        response = client.get(path)
        assert response.status_code == 404 and "no image with id" in response.json()["detail"], path


def test_only_the_bound_host_names_are_answered(indexed):
    client = app_client(indexed[1], allowed_hosts=["localhost", "127.0.0.1", "[::1]"], base_url="http://127.0.0.1:8000")
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example"):  # DNS rebinding
        response = client.get("/api/info", headers={"Host": host})
        assert response.status_code == 400 and "images" not in response.text, host


def test_uploads_are_decoded_a_bounded_number_at_a_time(indexed, monkeypatch):
    import threading
    import time

    import src.serving.engine

    engine = Engine(indexed[1], Limits(max_decodes=2))
    running, peak, lock = [0], [0], threading.Lock()
    decode = src.serving.engine.decode_resized

    def slow_decode(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return decode(*args)

    monkeypatch.setattr(src.serving.engine, "decode_resized", slow_decode)
    out = io.BytesIO()
    Image.new("RGB", (32, 64), "red").save(out, format="PNG")
    threads = [threading.Thread(target=engine.embed, args=(out.getvalue(),)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2
