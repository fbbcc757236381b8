"""Records on the real shared data (skipped where ../shared is absent)."""

from __future__ import annotations

import pytest

from src.data.records import parse_standard_name, read_market_attribute_mat
from src.data.sources import CourseSource
from tests.conftest import ATTRIBUTE_MAT, COURSE, SAMPLES, needs_shared

pytestmark = needs_shared


def test_course_train_records_match_the_documented_counts():
    records = CourseSource(COURSE).labelled()
    assert len(records) == 10_313
    assert len({r.pid for r in records}) == 600
    assert {r.camid for r in records} == {1, 2, 3, 4, 5, 6}
    assert all(r.labels is not None and len(r.labels) == 12 for r in records)


def test_course_unlabelled_folders():
    source = CourseSource(COURSE)
    assert len(source.gallery()) == 19_688
    assert len(source.queries()) == 2_248
    assert all(r.pid == -1 for r in source.queries())


def test_standard_names_parse_from_the_samples():
    parsed = {p.name: parse_standard_name(p.name) for p in sorted(SAMPLES.glob("*.jpg"))}
    assert len(parsed) == 7
    assert parsed["0001_c1s1_001051_00.jpg"] == (1, 1)
    assert parsed["0065_c6s1_009501_02.jpg"] == (65, 6)
    assert {cam for _, cam in parsed.values()} <= set(range(1, 7))


def test_attribute_mat_has_751_train_and_750_test_ids():
    tables = read_market_attribute_mat(ATTRIBUTE_MAT)
    assert len(tables["train"]) == 751
    assert len(tables["test"]) == 750
    assert not set(tables["train"].index) & set(tables["test"].index)
    # fields are read by name: the train struct lists colours before 'clothes', the test struct after
    assert tables["train"].loc[2, "upred"] == 2 and tables["train"].loc[2, "downblue"] == 2
    for table in tables.values():
        assert table["age"].between(1, 4).all()
        assert table.drop(columns=["id", "age"]).isin([1, 2]).all().all()


@pytest.mark.parametrize("split", ["train", "test"])
def test_mat_colour_fields_read_by_name(split):
    import numpy as np
    import scipy.io

    struct = scipy.io.loadmat(ATTRIBUTE_MAT)["market_attribute"][split][0, 0]
    table = read_market_attribute_mat(ATTRIBUTE_MAT)[split]
    np.testing.assert_array_equal(table["downbrown"].to_numpy(), struct["downbrown"][0, 0].ravel())
    np.testing.assert_array_equal(table["gender"].to_numpy(), struct["gender"][0, 0].ravel())
