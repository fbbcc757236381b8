"""The suite runs without pytest-xdist too: ``pytest -p no:xdist`` (one process) neither stops at pyproject.toml's
``-n auto --dist worksteal`` nor at the conftest's xdist hook."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_pytest_runs_without_xdist():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                             "tests/test_docs_links.py", "-k", "slugs"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout and "INTERNALERROR" not in result.stdout + result.stderr
