"""bench/bench_faiss_index.py runs end to end in --small mode and prints its tables (slow: CI's second step)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_faiss_bench_small():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_faiss_index.py"), "--small"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for row in ("| 4,000 | flat |", "| 4,000 | ivf_pq |", "| 4,000 | hnsw |", "| 4,000 | today's dense |",
                "### Search, 1% filter (upcolor=red,downcolor=blue)", "faiss threads=1"):
        assert row in done.stdout, row
    assert "| NO |" not in done.stdout  # every filtered search returned a full top 10
