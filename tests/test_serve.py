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


SECRET_TOKEN = "s3cret-token-never-echoed-0123"


def test_the_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from src.serve import read_token_file, token_out_of_argv

    monkeypatch.setenv("MPR_SERVE_TOKEN", "")  # restored after the test: token_out_of_argv sets it
    (tmp_path / "token").write_text(SECRET_TOKEN + "\n")
    assert read_token_file(tmp_path / "token") == SECRET_TOKEN
    with pytest.raises(ConfigError, match=r"token_file=.*missing: No such file") as refused:
        read_token_file(tmp_path / "missing")
    assert SECRET_TOKEN not in str(refused.value)
    argv = token_out_of_argv(["src/serve.py", "index=x", f"token={SECRET_TOKEN}", "port=abc"])
    assert argv == ["src/serve.py", "index=x", "port=abc"]  # Hydra never sees it, so never echoes it
    import os

    assert os.environ["MPR_SERVE_TOKEN"] == SECRET_TOKEN


def test_the_access_log_never_shows_the_token(tmp_path):
    import logging

    from src.serving.app import HideToken

    record = logging.LogRecord("uvicorn.access", logging.INFO, "h.py", 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/?token={SECRET_TOKEN}&x=1", "1.1", 200), None)
    assert HideToken().filter(record) and SECRET_TOKEN not in record.getMessage()
    assert "/?token=***&x=1" in record.getMessage()


def test_a_start_up_error_does_not_echo_the_token(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "src.serve", f"index={tmp_path}", f"token={SECRET_TOKEN}", "port=abc"],
                            capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HYDRA_FULL_ERROR": "0"})
    assert result.returncode == 2 and SECRET_TOKEN not in result.stdout + result.stderr
    assert "error: port='abc': expected a whole number from 1 to 65535" in result.stderr
