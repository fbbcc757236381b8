"""Shared helpers for the benchmark scripts (seeded data, isolated runs, markdown tables)."""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(description: str, repeats: int, ref_repeats: int, ref_queries: int | None = None, extra=None):
    """The common options; ``extra(parser)`` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    if ref_queries is not None:
        parser.add_argument("--ref-queries", type=int, default=ref_queries,
                            help="queries on which the (dense, slow) reference is actually run")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a few seconds, for CI smoke tests")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed runs of our implementation")
    parser.add_argument("--ref-repeats", type=int, default=ref_repeats, help="timed runs of the reference")
    parser.add_argument("--workdir", default=None, help="where inputs/outputs are stored (default: temp dir)")
    args = parser.parse_args()
    if args.small:
        args.repeats, args.ref_repeats = min(args.repeats, 2), min(args.ref_repeats, 1)
        if ref_queries is not None:
            args.ref_queries = min(args.ref_queries, 20)
    return args


def workdir(args) -> tempfile.TemporaryDirectory | Path:
    return Path(args.workdir) if args.workdir else tempfile.TemporaryDirectory(prefix="bench_")


def load_torchreid_file(relative: str):
    """One torchreid source file as a standalone module (the package itself is never imported)."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    module_spec = importlib.util.spec_from_file_location(f"_reference_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    saved = sys.modules.get("torchreid", ...)
    sys.modules["torchreid"] = None  # the optional cython import then fails fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module_spec.loader.exec_module(module)
    finally:
        if saved is ...:
            del sys.modules["torchreid"]
        else:
            sys.modules["torchreid"] = saved
    return module


def make_features(num_query, num_gallery, num_ids, num_cams, dim, seed, noise=1.4):
    """Seeded float32 features with identity structure: identity centre + camera shift + noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim), dtype=np.float32)
    cam_shift = 0.3 * rng.standard_normal((num_cams, dim), dtype=np.float32)
    labels = {}
    feats = []
    for role, n in (("q", num_query), ("g", num_gallery)):
        pids, cams = rng.integers(0, num_ids, n), rng.integers(0, num_cams, n)
        x = rng.standard_normal((n, dim), dtype=np.float32)
        x *= noise
        x += centres[pids]
        x += cam_shift[cams]
        labels[f"{role}_pids"], labels[f"{role}_camids"] = pids, cams
        feats.append(x)
    return feats[0], feats[1], labels


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; return (list of seconds, last result)."""
    times, result = [], None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _vm_hwm_gib() -> float:
    """Peak RSS of this process's own address space (VmHWM), to cross-check ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 2**20
    except (OSError, StopIteration):
        return float("nan")


def _child(func, args):
    result = func(*args)
    result["peak_rss_gib"] = peak_rss_gib()
    result["vm_hwm_gib"] = _vm_hwm_gib()
    try:
        import torch

        result["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return result


def isolated(func, *args) -> dict:
    """Run ``func(*args)`` (a module-level function returning a dict) in a fresh process.

    The returned dict gains ``peak_rss_gib``: that process's ru_maxrss, which
    covers the interpreter, torch, the inputs it loads and the run itself.
    Linux carries the parent's RSS at fork time into a child's ru_maxrss, so
    the benchmark parents stay lean (numpy only, no data held) and every input
    is built in a child too; ``vm_hwm_gib`` (VmHWM) is returned as a cross-check.
    """
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_child, func, args).result()


def median(result: dict) -> float:
    return statistics.median(result["times"])


def fmt_row(name: str, inputs: str, result: dict, ref_median: float | None = None) -> list[str]:
    """One table row; ``speed-up`` is ``ref_median / median`` (``-`` without a reference)."""
    times = result["times"]
    speedup = f"{ref_median / median(result):.1f}x" if ref_median else "-"
    return [name, inputs, f"{median(result):.3f}", f"{min(times):.3f}", str(len(times)), speedup,
            f"{result['peak_rss_gib']:.2f}", f"{result.get('rss_after_inputs_gib', float('nan')):.2f}"]


HEADERS = ["implementation", "input", "median s", "min s", "runs", "speed-up vs reference",
           "peak RSS GiB", "RSS after loading inputs GiB"]


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(torch_threads: int | str = "?") -> str:
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M')} | nproc={os.cpu_count()} | torch threads={torch_threads} | "
            f"load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (other jobs may share the CPU)")
