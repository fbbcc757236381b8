"""src/retrieval/outputs.py: gallery files moved since indexing are said in one warning; the rankings stay."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from src.retrieval.outputs import write_search_outputs
from src.retrieval.search import search
from src.retrieval.store import MissingGalleryFilesWarning
from tests.retrieval.worlds import build, gallery, world  # noqa: F401  (fixtures)


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
