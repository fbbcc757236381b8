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
from src.serving.engine import Engine, Limits, UploadError, check_upload, decode_upload, predicted
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
