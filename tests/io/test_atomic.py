"""Output folders are checked before any work."""

from __future__ import annotations

import pytest

from src.errors import ConfigError
from src.io.atomic import check_writable


def test_a_new_folder_under_a_writable_one_passes_and_is_not_created(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()


def test_a_folder_under_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"file.txt/out: cannot be written, .*file.txt is a file"):
        check_writable(tmp_path / "file.txt" / "out")
