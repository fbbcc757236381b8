"""Unlabelled images for pseudo identities: which images are used, how clusters become identities, checkpoints."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.pseudo import PSEUDO_PID_BASE, PseudoLabels, read_unlabelled
from src.data.records import DataError, ImageRecord, file_digest, unlabelled_records
from src.data.synthetic import generate_synthetic_dataset


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("syn") / "data", num_train_ids=8, num_test_ids=4)


def labelled(root: Path) -> list[ImageRecord]:
    return [ImageRecord(p.path, 1, 1) for p in unlabelled_records(root / "train")]


def test_folders_are_read_relative_to_the_root_each_content_once(course):
    records = read_unlabelled(course, ["test", "queries"], labelled(course))
    digests = [file_digest(r.path) for r in records]
    expected = {file_digest(r.path) for folder in ("test", "queries") for r in unlabelled_records(course / folder)}
    assert len(digests) == len(set(digests)) == len(expected)


def test_copies_of_labelled_images_never_become_unlabelled_training_data(course, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    train_images = sorted((course / "train").glob("*.jpg"))[:5]
    for image in train_images:
        shutil.copy(image, extra / f"copy_{image.name}")
    with pytest.warns(UserWarning, match="left out 5 images identical to labelled ones"):
        records = read_unlabelled(course, ["test", str(extra)], labelled(course))
    assert not any(r.path.parent == extra for r in records)


def test_missing_empty_and_unreadable_folders(course, tmp_path):
    with pytest.raises(DataError, match=r"nowhere: data.unlabelled folder not found"):
        read_unlabelled(course, ["nowhere"], [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data.unlabelled: .*empty: no images"):
        read_unlabelled(course, [str(tmp_path / "empty")], [])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(b"not a jpeg")
    shutil.copy(next((course / "test").glob("*.jpg")), broken / "good.jpg")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable images: .*bad.jpg"):
        records = read_unlabelled(course, [str(broken)], [])
    assert [r.name for r in records] == ["good.jpg"]


def make_pseudo(count: int = 10, capacity: int = 3) -> PseudoLabels:
    records = [ImageRecord(Path(f"/u/{i:03d}.jpg"), -1, -1) for i in range(count)]
    return PseudoLabels(records, torch.arange(count).view(count, 1, 1, 1).expand(count, 3, 2, 2).to(torch.uint8), capacity, first_label=7)


def test_clusters_become_identities_after_the_labelled_ones():
    pseudo = make_pseudo()
    pseudo.assign([0, 0, 1, 1, -1, 2, 2, -1, 0, 1])
    assert pseudo.num_clusters == 3 and pseudo.round == 1
    assert pseudo.pid_to_label() == {PSEUDO_PID_BASE: 7, PSEUDO_PID_BASE + 1: 8, PSEUDO_PID_BASE + 2: 9}
    assert [r.pid - PSEUDO_PID_BASE for r in pseudo.records()] == [0, 0, 1, 1, 2, 2, 0, 1]
    assert pseudo.cache_of_clustered()[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 5, 6, 8, 9]


def test_beyond_the_classifier_room_the_smallest_clusters_are_left_out():
    pseudo = make_pseudo(capacity=2)
    targets = {"age": torch.tensor([[1.0, 0], [0, 1.0], [0.5, 0.5]])}
    with pytest.warns(UserWarning, match="3 clusters, room for data.max_pseudo_identities=2"):
        pseudo.assign([2, 2, 2, 0, 0, 0, 1, -1, -1, 0], targets)
    assert pseudo.cluster_ids.tolist() == [1, 1, 1, 0, 0, 0, -1, -1, -1, 0]  # cluster 1 (one image) dropped
    assert torch.equal(pseudo.attribute_targets["age"], torch.tensor([[1.0, 0], [0.5, 0.5]]))
    mask, soft = pseudo.soft_attribute_targets(torch.tensor([5, PSEUDO_PID_BASE + 1, PSEUDO_PID_BASE]))
    assert mask.tolist() == [False, True, True] and torch.equal(soft["age"], torch.tensor([[0.5, 0.5], [1.0, 0]]))


def test_a_round_without_clusters_trains_on_nothing_unlabelled():
    pseudo = make_pseudo()
    pseudo.assign(np.full(10, -1))
    assert pseudo.num_clusters == 0 and pseudo.records() == [] and pseudo.pid_to_label() == {}


def test_the_checkpoint_state_round_trips_and_refuses_other_images():
    pseudo = make_pseudo()
    pseudo.assign([0, 0, 1, 1, -1, 2, 2, -1, 0, 1])
    restored = make_pseudo()
    restored.load_state_dict(pseudo.state_dict())
    assert restored.cluster_ids.tolist() == pseudo.cluster_ids.tolist() and restored.round == 1
    with warnings.catch_warnings():
        other = make_pseudo(count=9)
    with pytest.raises(DataError, match=r"the images found \(9\) are not those the checkpoint being resumed clustered \(10"):
        other.load_state_dict(pseudo.state_dict())
