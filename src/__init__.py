import os

# OpenMP threads sleep instead of spinning while they wait: on a shared CPU a spinning thread steals the core
# the other threads need (BENCHMARKS.md, threads). Set before anything loads torch's OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import src.config  # noqa: E402,F401  (registers the ${not:...} resolver used by conf/)
