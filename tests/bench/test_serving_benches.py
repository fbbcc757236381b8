"""The description-search and app-load benchmarks run end to end in --small mode and print their tables."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_small(script: str, *options: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--small", *options], capture_output=True, text=True,
                          timeout=900, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_description_bench_small():
    out = run_small("bench_description_search.py")
    assert "| description | relevant | AP % |" in out
    assert out.count("\n| ") == 1 + 12  # header, one row per description
    mean = float(re.search(r"mAP of \d+ descriptions: ([\d.]+)%", out).group(1))
    assert 0 < mean <= 100


def test_load_bench_small():
    out = run_small("bench_serve_load.py", "--workers", "2")  # as the README runs it
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| photo") or line.startswith("| description")]
    assert len(rows) == 4  # 2 query kinds x 1 and 2 clients
    for row in rows:
        requests, errors = int(row[2]), int(row[7])
        assert requests > 0 and errors == 0, row
