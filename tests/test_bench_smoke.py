"""Smoke tests: every benchmark script runs end to end in --small mode and prints its table (no timing asserted)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
REFERENCE_SCRIPTS = ["bench_rank.py", "bench_rerank.py", "bench_large_gallery.py"]
OWN_SCRIPTS = {
    "bench_stage2_epoch.py": "| cached 543-d descriptors |",
    "bench_lightning_overhead.py": "| Lightning (AttributeModule + Trainer) |",
    "bench_inference.py": "| float32 channels_last |",
    "bench_data_pipeline.py": "| model training step (lite0) |",
    "bench_attribute_consensus.py": "| + flip + consensus k=4 re-ranked |",
}


def run_small(script: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--small"], capture_output=True, text=True,
                          timeout=300, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("script", REFERENCE_SCRIPTS)
def test_reference_bench_small(script):
    if importlib.util.find_spec("torchreid") is None:
        pytest.skip("torchreid is not installed (reference implementation for the benchmarks)")
    out = run_small(script)
    assert "| implementation | input | median s |" in out
    assert out.count("\n| ") >= 3  # header + at least two result rows
    assert "outputs agree" in out


@pytest.mark.parametrize("script, row", OWN_SCRIPTS.items())
def test_own_bench_small(script, row):
    out = run_small(script)
    assert row in out
