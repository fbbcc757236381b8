"""Benchmark: how long each command takes to start, answer ``--help`` or refuse a bad config, and a one-query search.

    python bench/bench_startup.py [--small] [--repeats 3] [--repo PATH] [--workdir DIR]

Each command runs as the user types it (``python -m src.<entry> ...``, a fresh interpreter every time) from the
root of ``--repo`` (default: this checkout; another checkout, e.g. ``git worktree add /tmp/before main``, gives the
"before" numbers with the same inputs). Wall time is the median of ``--repeats`` runs; one more run under
``python -X importtime`` names the slowest top-level imports (cumulative seconds) and the heavy libraries the
command loaded at all. The search runs one query against an index of 1,000 synthetic gallery images (``--small``:
40) built once with the shipped re-ID checkpoint (kept in ``--workdir`` for later runs).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, machine_line, markdown_table, parse_args, workdir

ENTRY_POINTS = ("train", "eval", "predict", "index", "search", "export", "serve", "release")
HEAVY = ("torch", "torchvision", "pytorch_lightning", "faiss", "matplotlib", "pandas", "timm", "scipy", "sklearn")
CHECKPOINT = "weights/strong_reid_128x64.pt"
CONFIG_ERROR = "torch_threads=0"  # every entry point refuses it before any work, with one line and status 2
# the entry points whose config needs a task: the config-error rows give it, so that the error is the threads one
# (--help answers bare: src/cli_help.py)
TASK = {"train": ["task=attributes"], "eval": ["task=attributes"]}


def commands(index: Path, query: Path, runs: Path) -> list[tuple[str, list[str], int]]:
    """(row name, arguments after ``python``, expected exit status)."""
    rows = [("src.index info", ["-m", "src.index", "info", str(index)], 0)]
    rows += [(f"src.{entry} --help", ["-m", f"src.{entry}", "--help"], 0) for entry in ENTRY_POINTS]
    rows += [(f"src.{entry} {CONFIG_ERROR}", ["-m", f"src.{entry}", *TASK.get(entry, []), CONFIG_ERROR,
                                              f"hydra.run.dir={runs / entry}"], 2) for entry in ENTRY_POINTS]
    rows.append(("src.search, 1 query", ["-m", "src.search", f"index={index}", f"query={query}", "top_k=10",
                                         f"hydra.run.dir={runs / 'search'}"], 0))
    return rows


def make_index(repo: Path, folder: Path, num_images: int) -> tuple[Path, Path]:
    """A synthetic gallery of ``num_images`` images, its index (shipped re-ID checkpoint, built by ``repo``'s code)
    and one query image."""
    index, gallery = folder / f"index-{num_images}", folder / f"gallery-{num_images}"
    if not (index / "manifest.json").is_file():
        code = ("import sys; from src.data.synthetic import generate_synthetic_dataset as g; "
                f"g(sys.argv[1], num_train_ids=1, num_test_ids={num_images // 8}, images_per_id=(8, 8), seed=0)")
        subprocess.run([sys.executable, "-c", code, str(folder / "synthetic")], cwd=repo, check=True)
        if not gallery.exists():
            gallery.symlink_to(folder / "synthetic" / "test")
        subprocess.run([sys.executable, "-m", "src.index", "build", f"ckpt_path={CHECKPOINT}", f"gallery={gallery}",
                        f"output={index}"], cwd=repo, check=True, capture_output=True)
    query = sorted((folder / "synthetic" / "queries").iterdir())[0]
    return index, query


def run(repo: Path, args: list[str], expected: int, importtime: bool = False) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != expected:  # reported in the table, the other rows still run
        print(f"{' '.join(args)}: exit status {proc.returncode}, expected {expected}\n{proc.stderr[-1500:]}", file=sys.stderr)
        return seconds, f"exit status {proc.returncode}"
    return seconds, proc.stderr


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(stderr: str, top: int = 3) -> tuple[str, str]:
    """(the ``top`` slowest imports at the top level with their cumulative seconds, the heavy libraries loaded)."""
    first_level, loaded = [], set()
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, indent, name = int(match[2]), len(match[3]), match[4]
        if indent <= 1:
            first_level.append((cumulative, name))
        if name.split(".")[0] in HEAVY:
            loaded.add(name.split(".")[0])
        if name == "torchvision.models":
            loaded.add("torchvision.models")
    first_level.sort(reverse=True)
    slowest = ", ".join(f"{name} {us / 1e6:.1f}" for us, name in first_level[:top]) or "-"
    return slowest, ", ".join(sorted(loaded)) or "none"


def own_options(parser) -> None:
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose commands are timed (default: this one)")
    parser.add_argument("--rows", default=None, help="time only the rows whose name contains this text")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeats=3, ref_repeats=1, extra=own_options)
    repo = Path(args.repo).resolve()
    num_images = 40 if args.small else 1000
    if args.small:
        args.repeats = 1
    holder = workdir(args)
    folder = (holder if isinstance(holder, Path) else Path(holder.name)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    index, query = make_index(repo, folder, num_images)
    rows = []
    for name, cmd, expected in commands(index, query, folder / "runs"):
        if args.rows and args.rows not in name:
            continue
        if args.small and name not in ("src.index info", "src.search torch_threads=0"):
            continue  # the smoke test: two rows that load no torch, one run each (a busy CI machine stays in time)
        times = [run(repo, cmd, expected)[0] for _ in range(args.repeats)]
        _, stderr = run(repo, cmd, expected, importtime=True)
        slowest, heavy = import_profile(stderr) if not stderr.startswith("exit status") else (stderr, "-")
        rows.append([name, f"{statistics.median(times):.2f}", f"{min(times):.2f}", str(len(times)), slowest, heavy])
    print(f"startup of the commands in {repo} ({num_images}-image index for the search)")
    print(machine_line(1))
    print(markdown_table(["command", "median s", "min s", "runs", "slowest imports (cumulative s)",
                          "heavy libraries loaded"], rows))


if __name__ == "__main__":
    main()
