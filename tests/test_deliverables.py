"""src/deliverables.py: predictions for unlabelled images as files, ``reid_test.txt`` (matches within the threshold,
never the query's own copy) and the attribute files, with the refusals that come before any inference."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from src.data.records import DataError, ImageRecord
from src.deliverables import predict_attributes, predict_reid
from src.errors import ConfigError
from tests.models.test_loading import save_attribute_checkpoint
from tests.retrieval.worlds import HEIGHT, TINY_NET, WIDTH, save_reid_checkpoint

SIZE = {"height": HEIGHT, "width": WIDTH, "num_workers": 0}  # the tiny checkpoints record no input size


@pytest.fixture
def folders(tmp_path):
    """A gallery of 4 images and 2 queries, the first a byte copy of gallery image g1."""
    rng = np.random.default_rng(0)
    gallery, queries = tmp_path / "gallery", tmp_path / "queries"
    gallery.mkdir(), queries.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(gallery / f"g{i}.png")
    shutil.copyfile(gallery / "g1.png", queries / "q0.png")
    Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(queries / "q1.png")
    records = lambda folder: [ImageRecord(p, -1, -1) for p in sorted(folder.iterdir())]
    return records(gallery), records(queries)


@pytest.fixture
def reid_ckpt(tmp_path, folders):
    return save_reid_checkpoint(tmp_path / "reid.ckpt", 0, [r.path for r in folders[0]])


@pytest.fixture
def attribute_ckpt(tmp_path):
    torch.manual_seed(0)
    save_attribute_checkpoint(tmp_path / "attributes.ckpt", TINY_NET)
    return tmp_path / "attributes.ckpt"


def test_reid_lines_hold_every_gallery_image_within_the_threshold_but_the_query_own_copy(reid_ckpt, folders, tmp_path):
    gallery, queries = folders
    path = predict_reid(reid_ckpt, queries, gallery, tmp_path / "out", threshold=1e9, **SIZE)
    lines = dict(line.split(": ") for line in path.read_text().splitlines())
    assert list(lines) == ["q0.png", "q1.png"]
    assert sorted(lines["q0.png"].split(", ")) == ["g0.png", "g2.png", "g3.png"]  # g1 is q0's own copy
    assert sorted(lines["q1.png"].split(", ")) == ["g0.png", "g1.png", "g2.png", "g3.png"]
    assert pd.read_csv(tmp_path / "out" / "classification_test.csv")["id"].tolist() == [r.name for r in gallery]


def test_reid_needs_a_reid_checkpoint_and_a_threshold(reid_ckpt, attribute_ckpt, folders, tmp_path):
    gallery, queries = folders
    with pytest.raises(ConfigError, match=r"attributes.ckpt: a attributes checkpoint gives no re-ID embeddings"):
        predict_reid(attribute_ckpt, queries, gallery, tmp_path / "out", threshold=1.0, **SIZE)
    with pytest.raises(ConfigError, match=r"reid.ckpt: holds no swept threshold; pass threshold=VALUE"):
        predict_reid(reid_ckpt, queries, gallery, tmp_path / "out", **SIZE)
    assert not (tmp_path / "out").exists()


def test_corrupt_images_fail_naming_them_or_are_skipped_when_asked(attribute_ckpt, folders, tmp_path):
    gallery, _ = folders
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    records = [*gallery[:2], ImageRecord(broken, -1, -1), gallery[2]]
    with pytest.raises(DataError, match=r"broken\.jpg: cannot decode"):
        predict_attributes(attribute_ckpt, records, tmp_path / "strict", **SIZE)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable images: .*broken\.jpg"):
        csv = predict_attributes(attribute_ckpt, records, tmp_path / "out", skip_corrupt=True, **SIZE)
    assert pd.read_csv(csv)["id"].tolist() == ["g0.png", "g1.png", "g2.png"]
    assert list(json.loads((tmp_path / "out" / "attributes.json").read_text())) == ["g0.png", "g1.png", "g2.png"]


def test_neighbour_consensus_needs_a_reid_checkpoint(attribute_ckpt, folders, tmp_path):
    with pytest.raises(ConfigError, match=r"attributes.ckpt: attributes.consensus_k needs re-ID embeddings"):
        predict_attributes(attribute_ckpt, folders[0], tmp_path / "out", attributes={"consensus_k": 2}, **SIZE)


def test_reid_lines_cut_at_a_calibrated_probability(reid_ckpt, folders, tmp_path):
    """``min_p_same`` cuts at the distance the calibration the file carries gives that probability: everything when
    no distance falls below it, the same lines as ``threshold=`` at that distance, and a one-line refusal without one."""
    from src.metrics.verification import distance_at
    from src.release import add_calibration

    gallery, queries = folders
    with pytest.raises(ConfigError, match=r"reid.ckpt: carries no calibration, so min_p_same=0.5 has no distance"):
        predict_reid(reid_ckpt, queries, gallery, tmp_path / "none", min_p_same=0.5, **SIZE)
    with pytest.raises(ConfigError, match=r"threshold=1.0 and min_p_same=0.5: pass one of the two cuts"):
        predict_reid(reid_ckpt, queries, gallery, tmp_path / "none", threshold=1.0, min_p_same=0.5, **SIZE)
    assert not (tmp_path / "none").exists()
    everything = predict_reid(reid_ckpt, queries, gallery, tmp_path / "all", threshold=1e9, **SIZE).read_text()
    wide = {"distance": [0.0, 1e6], "p_same": [1.0, 0.0]}  # p >= 0.5 up to 5e5: every pair
    add_calibration(reid_ckpt, {"plain": wide})
    assert predict_reid(reid_ckpt, queries, gallery, tmp_path / "wide", min_p_same=0.5, **SIZE).read_text() == everything
    narrow = {"distance": [0.0, 1e-9], "p_same": [1.0, 0.0]}  # p >= 0.5 only below 5e-10: no pair but own copies
    add_calibration(reid_ckpt, {"plain": narrow})
    lines = predict_reid(reid_ckpt, queries, gallery, tmp_path / "narrow", min_p_same=0.5, **SIZE).read_text()
    assert lines == "q0.png: \nq1.png: \n" and distance_at(narrow, 0.5) == pytest.approx(5e-10)
    with pytest.raises(ConfigError, match=r"min_p_same=0.5: no distance reaches P\(same identity\) 0.5"):
        add_calibration(reid_ckpt, {"plain": {"distance": [0.0, 1.0], "p_same": [0.4, 0.0]}})
        predict_reid(reid_ckpt, queries, gallery, tmp_path / "low", min_p_same=0.5, **SIZE)
