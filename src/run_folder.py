"""A training run's folder: one writer at a time, and no new run over an old one by accident.

A live second training into the same folder is refused (an exclusive ``flock`` on ``.run.lock``, released when the
process ends, even by SIGKILL). A folder that already holds a run (checkpoints or ``metrics.csv``) takes a new
run only when the user resumes it (``ckpt_path=last`` or a path) or asks to start over (``overwrite=true``,
which removes the old run's files first).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from src.errors import ConfigError
from src.io.locks import Locked, take_lock

LOCK_NAME = ".run.lock"
RUN_FILES = ("checkpoints", "metrics.csv", "metrics.json")


def is_rank_zero() -> bool:
    """DDP children (started by Lightning with RANK/LOCAL_RANK set) share rank 0's folder and claim."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def claim(output_dir: Path, ckpt_path: str | None, overwrite: bool = False):
    """Lock ``output_dir`` for this run and check that starting here is what the user asked for. Returns the open
    lock file (keep it referenced for the run's lifetime)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        handle = take_lock(output_dir / LOCK_NAME, str(os.getpid()))
    except Locked as held:
        raise ConfigError(f"{output_dir}: another training (pid {held.holder or '?'}) is writing into this run folder; "
                          "wait for it or choose another hydra.run.dir") from None
    existing = [name for name in RUN_FILES if (output_dir / name).exists() and _not_empty(output_dir / name)]
    if ckpt_path is None and existing:
        if not overwrite:
            handle.close()
            raise ConfigError(f"{output_dir}: already holds a run ({', '.join(existing)}); resume it with ckpt_path=last, "
                              "start over with overwrite=true, or choose another hydra.run.dir")
        for name in existing:
            target = output_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    return handle


def resolve_resume(output_dir: Path, ckpt_path: str | None) -> str | None:
    """``last`` -> the folder's ``checkpoints/last.ckpt`` (an error naming the folder when there is none); a path is
    read once here so that a truncated or foreign file is named before any work."""
    from src.models.loading import read_checkpoint

    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ConfigError(f"{output_dir}: ckpt_path=last, but this run folder has no checkpoints/last.ckpt to resume "
                              "(pass hydra.run.dir=<the interrupted run's folder>)")
        ckpt_path = str(last)
    read_checkpoint(ckpt_path)
    return ckpt_path


def _not_empty(path: Path) -> bool:
    return any(path.iterdir()) if path.is_dir() else path.stat().st_size > 0


def remove_if_unused(folder: Path, job_name: str) -> bool:
    """Remove a run folder that holds nothing but what this command's start wrote (Hydra's ``.hydra/`` and
    ``<job>.log``, a training's ``config.yaml`` and its own ``.run.lock``): a failed command leaves no empty run
    folder. Anything else in it (checkpoints, metrics, results, another process's lock) keeps it. Returns whether
    it was removed."""
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir() or folder == Path.cwd() or folder in Path.cwd().parents:
        return False
    entries = {p.name for p in folder.iterdir()}
    if not entries <= {".hydra", f"{job_name}.log", "config.yaml", LOCK_NAME}:
        return False
    if LOCK_NAME in entries and (folder / LOCK_NAME).read_text(errors="replace").strip() != str(os.getpid()):
        return False  # the lock of another run that is writing here
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()
