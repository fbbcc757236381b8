"""src/data/images.py: image files -> uint8 (3, H, W) tensors, whatever their mode; errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.images import drop_unreadable, load_image
from src.data.records import DataError, ImageRecord
from tests.data.conftest import write_image


def test_an_rgb_png_decodes_to_its_exact_pixels_channels_first(tmp_path):
    path = write_image(tmp_path / "person.png", size=(20, 30))
    expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    image = load_image(path)
    assert image.dtype == torch.uint8 and image.is_contiguous()
    assert np.array_equal(image.numpy(), expected)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 this is not a jpeg", None])
def test_corrupt_or_empty_jpeg_is_named(tmp_path, content):
    path = write_image(tmp_path / "0001_c1_000000001.jpg")
    path.write_bytes(path.read_bytes()[:200] if content is None else content)
    with pytest.raises(DataError, match="0001_c1_000000001.jpg: (empty file|cannot decode)"):
        load_image(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"gone\.jpg: file not found"):
        load_image(tmp_path / "gone.jpg")


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_other_image_modes_become_rgb(tmp_path, mode):
    suffix = ".jpg" if mode in ("L", "CMYK") else ".png"
    path = tmp_path / f"img{suffix}"
    array = np.linspace(0, 255, 64 * 128).reshape(128, 64).astype(np.uint8)
    if mode == "I;16":
        Image.fromarray(array.astype(np.uint16) * 257).save(path)
    else:
        Image.fromarray(np.stack([array] * 3, -1)).convert(mode).save(path)
    image = load_image(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 128, 64)
    assert image.float().std() > 10  # content survived the conversion


def test_sixteen_bit_images_are_scaled_to_eight_bits_only_when_they_use_the_range(tmp_path):
    values = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(values * 257).save(tmp_path / "wide.png")  # full 16-bit range: v * 257 * 255 / 65535 = v
    Image.fromarray(values).save(tmp_path / "narrow.png")  # already within 0..255: kept as is
    for name in ("wide.png", "narrow.png"):
        image = load_image(tmp_path / name)
        assert all(np.array_equal(channel, values) for channel in image.numpy()), name


def test_transparent_pixels_are_composited_onto_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 0)  # fully transparent: white
    rgba[0, 1] = (10, 20, 30, 255)  # opaque: its colour
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black: about half grey
    rgba[1, 1] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    image = load_image(tmp_path / "alpha.png").permute(1, 2, 0).numpy().astype(int)
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[0, 1].tolist() == [10, 20, 30] and image[1, 1].tolist() == [200, 100, 50]
    assert np.abs(image[1, 0] - 255 * (1 - 128 / 255)).max() <= 1


def test_very_large_image_is_shrunk_on_decode(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(6000, 3000))
    image = load_image(path, max_side=512)
    assert max(image.shape[1:]) <= 512


def test_unreadable_records_are_dropped_with_one_warning_naming_them(tmp_path):
    good = [write_image(tmp_path / f"good{i}.png", size=(8, 8)) for i in range(3)]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    records = [ImageRecord(p, 1, 1) for p in (good[0], broken, good[1], empty, good[2])]
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable images: .*broken\.jpg: cannot decode.*empty\.jpg: empty file"):
        kept = drop_unreadable(records)
    assert [r.path for r in kept] == good  # the readable ones, in their order


def test_readable_records_pass_without_a_warning(tmp_path, recwarn):
    records = [ImageRecord(write_image(tmp_path / f"{i}.png", size=(8, 8)), 1, 1) for i in range(2)]
    assert drop_unreadable(records) == records
    assert not [w for w in recwarn if "unreadable" in str(w.message)]
