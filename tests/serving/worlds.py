"""A tiny served index built from the shared data: 7 Market-1501 sample crops (with cameras) and 25 course test
images as the gallery, a seeded random re-ID checkpoint, and the app's test client."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from src.retrieval.build import build_index
from tests.conftest import COURSE, SAMPLES
from tests.retrieval.worlds import HEIGHT, WIDTH, save_reid_checkpoint

SECRET = "TOP-SECRET-7f3a91: this file is outside the index and its gallery"


def make_served_index(root: Path, num_course: int = 25) -> dict:
    """{gallery, index, ckpt, outside (a query image not in the gallery), secret (a file beside the gallery)}."""
    gallery = root / "gallery"
    (gallery / "course").mkdir(parents=True)
    for path in sorted(SAMPLES.iterdir()):
        shutil.copyfile(path, gallery / path.name)
    for path in sorted((COURSE / "test").iterdir())[:num_course]:
        shutil.copyfile(path, gallery / "course" / path.name)
    images = sorted(p for p in gallery.rglob("*.jpg"))
    ckpt = save_reid_checkpoint(root / "reid.ckpt", 0, images)
    build_index(ckpt, gallery, root / "index", height=HEIGHT, width=WIDTH, batch_size=16)
    outside = root / "outside.jpg"
    shutil.copyfile(sorted((COURSE / "queries").iterdir())[-1], outside)
    secret = root / "secret.txt"
    secret.write_text(SECRET)
    return {"root": root, "gallery": gallery, "index": root / "index", "ckpt": ckpt, "outside": outside, "secret": secret}


@pytest.fixture(scope="session")
def served_index(tmp_path_factory) -> dict:
    if not (COURSE.is_dir() and SAMPLES.is_dir()):
        pytest.skip(f"real Market-1501 data not found at {COURSE.parent} (only CI and developers have ../shared)")
    return make_served_index(tmp_path_factory.mktemp("served"))
