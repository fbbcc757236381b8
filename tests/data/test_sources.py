"""src/data/sources.py: data roots and their layouts (course, Market-1501) -> records; a wrong root or layout is
named with the layouts that are known."""

from __future__ import annotations

import shutil

import pytest

from src.data.records import DataError
from src.data.sources import CourseSource, StandardSource
from tests.data.conftest import make_course


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere.*not found"):
        CourseSource(tmp_path / "nowhere")


def test_unknown_layout_lists_the_known_ones(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match="missing.*known layouts"):
        CourseSource(tmp_path)


def test_a_course_folder_is_not_taken_for_a_market_folder(tmp_path):
    root = make_course(tmp_path)
    with pytest.raises(DataError, match=r"not a Market-1501 folder, missing \['bounding_box_train', 'bounding_box_test', "
                                        r"'query'\] \(found \['annotations_train.csv', 'queries', 'test', 'train'\]\)"):
        StandardSource(root, tmp_path / "market_attribute.mat")


def test_course_records_carry_identity_camera_and_labels(tmp_path):
    root = make_course(tmp_path, pids=(3, 7), per_id=2)
    records = CourseSource(root).labelled()
    assert sorted((r.pid, r.camid) for r in records) == [(3, 1), (3, 2), (7, 1), (7, 2)]
    assert all(r.labels is not None and len(r.labels) == 12 for r in records)
    gallery, queries = CourseSource(root).gallery(), CourseSource(root).queries()
    assert [r.name for r in gallery] == [r.name for r in queries] == ["000000.jpg"]
    assert all(r.pid == -1 for r in gallery + queries)  # unlabelled


def test_queries_are_optional_in_the_course_layout(tmp_path):
    root = make_course(tmp_path)
    shutil.rmtree(root / "queries")
    assert CourseSource(root).queries() == []


def test_empty_folder(tmp_path):
    root = make_course(tmp_path)
    shutil.rmtree(root / "queries")
    (root / "queries").mkdir()
    with pytest.raises(DataError, match="queries: no images"):
        CourseSource(root).queries()


def test_a_course_folder_without_test_is_refused_naming_the_way_out(tmp_path):
    root = make_course(tmp_path)
    CourseSource(root).check_unlabelled()  # with test/: fine
    shutil.rmtree(root / "test")
    with pytest.raises(DataError, match=r"/test: folder not found.*predict_test=false"):
        CourseSource(root).check_unlabelled()
