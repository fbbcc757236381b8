"""src/serve.py: a gallery whose files moved or vanished since indexing is said at start, in one warning (the
searches rank the stored embeddings, so the app still works, also when no file is left)."""

from __future__ import annotations

import shutil

import pytest

from src.config import compose_config
from src.errors import ConfigError
from src.retrieval.store import MissingGalleryFilesWarning, load_index
from src.serve import app_config, check_gallery_files
from tests.retrieval.worlds import build, gallery, world  # noqa: F401  (fixtures)


def test_moved_or_vanished_gallery_files_are_one_warning_at_start(world, gallery, tmp_path):  # noqa: F811
    report = build(world, gallery, tmp_path / "index", accelerator="cpu")
    index = load_index(report.path)
    check_gallery_files(index)  # all in place: nothing said
    first = sorted(gallery.iterdir())[0]
    first.rename(tmp_path / first.name)
    with pytest.warns(MissingGalleryFilesWarning, match=rf"1 of its {len(index)} gallery images are not in .*pictures answer 404.*"
                                                         r"gallery=NEWDIR output="):
        check_gallery_files(index)
    shutil.rmtree(gallery)
    with pytest.warns(MissingGalleryFilesWarning, match=rf"none of its {len(index)} gallery images is in .* any more "
                                                         r".*still rank them from the stored embeddings.*gallery=NEWDIR"):
        check_gallery_files(index)


@pytest.mark.parametrize("override, message", [
    ("port=-1", r"port=-1: expected a whole number from 1 to 65535"),
    ("port=99999", r"port=99999: expected a whole number from 1 to 65535"),
    ("port=abc", r"port='abc': expected a whole number from 1 to 65535"),
    ("workers=abc", r"workers='abc': expected a whole number >= 1"),
])
def test_a_bad_port_or_count_is_a_config_error_before_anything_loads(tmp_path, override, message):
    cfg = compose_config("serve", [f"index={tmp_path / 'no_index'}", override], tmp_path, tmp_path)
    with pytest.raises(ConfigError, match=message):
        app_config(cfg)


def test_the_host_names_answered_follow_the_bound_address(world, gallery, tmp_path):  # noqa: F811
    build(world, gallery, tmp_path / "index", accelerator="cpu")
    cfg = compose_config("serve", [f"index={tmp_path / 'index'}"], tmp_path, tmp_path)
    assert app_config(cfg)["allowed_hosts"] == ["127.0.0.1", "[::1]", "localhost"]
    cfg.host, cfg.token = "0.0.0.0", "a-long-enough-token-123"
    assert app_config(cfg)["allowed_hosts"] == ["*"]  # every address: the token guards
    cfg.host, cfg.allowed_hosts = "192.168.1.20", ["search.lan"]
    assert app_config(cfg)["allowed_hosts"] == ["search.lan"]
