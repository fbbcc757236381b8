"""Smoke tests: every benchmark script runs end to end in --small mode."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = ["bench_rank.py", "bench_rerank.py", "bench_large_gallery.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_small(script):
    if importlib.util.find_spec("torchreid") is None:
        pytest.skip("torchreid is not installed (reference implementation for the benchmarks)")
    proc = subprocess.run([sys.executable, str(BENCH / script), "--small"], capture_output=True, text=True,
                          timeout=300, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "| implementation | input | median s |" in out
    assert out.count("\n| ") >= 3  # header + at least two result rows
    assert "outputs agree" in out
