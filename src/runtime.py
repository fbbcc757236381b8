"""Process-wide CPU settings every entry point applies: how many torch threads to use.

On a CPU shared with other processes, a parallel op waits at OpenMP barriers for threads the OS has
descheduled: 2 threads beside one busy process ran several times slower than 1 (BENCHMARKS.md, threads).
So ``torch_threads: auto`` (the default) counts the cores that are actually free when the run starts, and
OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, set in ``src/__init__.py`` before torch loads).
"""

from __future__ import annotations

import os
import time

from src.errors import ConfigError


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies over all CPUs since boot, from /proc/stat; None where there is no /proc."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(window_s: float = 0.3) -> int:
    """Cores this process may use that were idle over the last ``window_s`` seconds (at least 1)."""
    cores = usable_cores()
    before = _cpu_times()
    if before is None:
        return cores
    time.sleep(window_s)
    after = _cpu_times()
    total = after[1] - before[1]
    if total <= 0:
        return cores
    busy_cpus = (os.cpu_count() or cores) * (1 - (after[0] - before[0]) / total)
    return max(1, min(cores, round((os.cpu_count() or cores) - busy_cpus)))


MAX_THREADS_PER_CORE = 4  # above this many threads per core, torch_threads is refused


def resolve_threads(setting: int | str | None) -> int:
    """``torch_threads``: a positive number, or ``auto``/null for the cores free at start."""
    threads = check_threads(setting)
    return free_cores() if threads is None else threads


def check_threads(setting: int | str | None) -> int | None:
    """The number ``torch_threads`` asks for (None: ``auto``/null), or a ConfigError; nothing is measured or loaded."""
    if setting is None or str(setting).lower() == "auto":
        return None
    try:
        threads = int(setting)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1 or str(threads) != str(setting).strip():
        raise ConfigError(f"torch_threads={setting!r}: expected a positive whole number or auto")
    cores = os.cpu_count() or 1
    if threads > MAX_THREADS_PER_CORE * cores:  # a typo (torch_threads=200): every thread would fight for the cores
        raise ConfigError(f"torch_threads={threads}: far above the {cores} cores of this machine (at most "
                          f"{MAX_THREADS_PER_CORE * cores}); use auto or a number up to {cores}")
    return threads


def runs_on_cpu(accelerator: str | None) -> bool:
    """``trainer.accelerator``: cpu, or auto on a machine without a GPU."""
    if accelerator == "cpu":
        return True
    import torch

    return accelerator == "cpu" or (accelerator in (None, "auto") and not torch.cuda.is_available())


def apply_threads(setting: int | str | None) -> int:
    """Set torch's intra-op threads from ``torch_threads`` and return the number used."""
    threads = resolve_threads(setting)
    import torch  # here, not at import: a command's --help or config error answers without loading torch

    torch.set_num_threads(threads)
    return threads


# Library messages that are not the user's to act on in this project's runs (each checked in tests/test_runtime.py):
# the CSV logger's "logs directory exists" (the run folder holds config.yaml; ResumableCSVLogger keeps metrics.csv
# rows on resume), Lightning's own deprecation of its _pytree use, frozen stage-1 modules in eval mode (intended),
# the advertisement tips for Lightning's cloud products, the notice that our TrainingClock (a Timer) enforces
# trainer.max_time, and torch's "No CUDA runtime is found" when torch.compile runs on a CPU.
_IGNORED_WARNINGS = (
    r"Experiment logs directory .* exists and is not empty",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # DDP: validation gathers every rank's per-image outputs before computing, so val/ metrics are already equal
    r"It is recommended to use `self.log\('val/.*sync_dist=True\)` when logging on epoch level",
    r"torch.distributed.nn.functional.all_gather is deprecated",  # inside Lightning's all_gather (DDP validation)
    r"Initializing zero-element tensors is a no-op",  # a released strong network's row-less identity classifier
)


_IGNORED_INFO = ("💡 Tip", "Ignoring `Trainer(max_time=...)`")  # the second: our TrainingClock enforces max_time
# torch.compile loads torch.utils.cpp_extension, which logs this on every machine that has a CUDA toolkit but no
# GPU runtime: on a CPU run there is nothing to do about it (the compiled code is C++ for the CPU).
_IGNORED_TORCH_LOGS = {"torch.utils.cpp_extension": ("No CUDA runtime is found",)}
# faiss's loader tries its AVX-512 build first and logs the failed import at INFO: silent while faiss loaded before
# Hydra set up logging, printed (as a ModuleNotFoundError) now that it loads where a search or build needs it.
_IGNORED_FAISS_LOGS = {"faiss.loader": ("Loading faiss", "Could not load library", "Successfully loaded faiss")}


class _DropTips:
    def __init__(self, prefixes: tuple[str, ...] = _IGNORED_INFO):
        self.prefixes = prefixes

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def quiet_library_noise() -> None:
    """Hide the library warnings and tips listed above; every other warning still shows."""
    import logging
    import warnings

    for pattern in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    dropped = {"pytorch_lightning.utilities.rank_zero": _IGNORED_INFO, "lightning_fabric.utilities.rank_zero": _IGNORED_INFO,
               **_IGNORED_TORCH_LOGS, **_IGNORED_FAISS_LOGS}
    for name, prefixes in dropped.items():
        logger = logging.getLogger(name)  # the library's own logger object, also when it is created later
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips(prefixes))
