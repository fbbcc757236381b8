"""src/retrieval/outputs.py (a file named tests/retrieval/test_outputs.py would clash with tests/models/test_outputs.py
under pytest's default import mode): identities of the images, and gallery files moved since indexing said in one
warning while the rankings stay."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from src.data.records import DataError
from src.retrieval.outputs import identities, read_identities, same_identity, write_search_outputs
from src.retrieval.search import search
from src.retrieval.store import MissingGalleryFilesWarning
from tests.retrieval.worlds import build, gallery, world  # noqa: F401  (fixtures)


def test_identities_from_market_names():
    assert identities(["0002_c1s1_000451_03.jpg", "0002_c1_016620005.jpg", "000001.jpg", "-1_c1s1_000001_00.jpg"]) == [2, 2, None, -1]
    assert same_identity(2, 2) is True and same_identity(2, 3) is False and same_identity(None, 2) is None
    assert same_identity(0, 0) is False


def test_identities_from_a_ground_truth_table_by_name_or_file_name(tmp_path):
    csv = tmp_path / "truth.csv"
    csv.write_text("name,pid,camid\n000001.jpg,7,1\nsub/000002.jpg,9,2\n")
    table = read_identities(csv)
    assert table == {"000001.jpg": 7, "sub/000002.jpg": 9}
    assert identities(["000001.jpg", "other/000001.jpg", "sub/000002.jpg", "000003.jpg"], table) == [7, 7, 9, None]
    assert same_identity(7, None) is None


def test_a_ground_truth_table_without_its_columns_is_named(tmp_path):
    csv = tmp_path / "truth.csv"
    csv.write_text("file,person\n000001.jpg,7\n")
    with pytest.raises(DataError, match=r"truth.csv: ground-truth CSV lacks columns \['name', 'pid'\]"):
        read_identities(csv)


def test_moved_gallery_files_are_one_warning_and_the_csv_is_unchanged(world, gallery, tmp_path):
    report = build(world, gallery, tmp_path / "index", accelerator="cpu")
    result = search(report.path, world["data"] / "queries", top_k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingGalleryFilesWarning)  # all files in place: no warning
        before = write_search_outputs(result, tmp_path / "before", html=False, max_visual_queries=2)
    gallery.rename(tmp_path / "moved")
    with pytest.warns(MissingGalleryFilesWarning, match=r"gallery images to draw are not in .*gallery \(moved since "
                                                        r"indexing\?\).*gallery=NEWDIR output="):
        after = write_search_outputs(result, tmp_path / "after", html=False, max_visual_queries=2)
    pd.testing.assert_frame_equal(pd.read_csv(before["csv"]), pd.read_csv(after["csv"]))
