"""Atomic file writes: a crash leaves the old file or none, never half a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:  # on disk before the rename, so a power cut cannot expose a torn file
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        # surrogateescape: file names that are not UTF-8 on disk are written back as their original bytes
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(path)


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=float) + "\n")


def write_csv(path: str | Path, frame, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, errors="surrogateescape", **kwargs)
    return Path(path)


def save_figure(path: str | Path, figure) -> Path:
    from src.io.plots import plt

    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    return Path(path)


def writable_folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` could not be made and written into (its nearest existing ancestor is a file, or not writable
    by this user), found without creating anything; None when it can."""
    folder = Path(os.path.abspath(folder))
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
        return f"{existing}: {'read-only file system' if read_only else 'not writable by this user'}"
    return None


def check_writable(folder: str | Path) -> Path:
    """An output folder that can be made and written, checked before any work and without creating anything: else
    a ConfigError naming it and why."""
    from src.errors import ConfigError

    folder = Path(os.path.abspath(folder))
    problem = writable_folder_problem(folder)
    if problem is not None:
        raise ConfigError(f"{folder}: cannot be written ({problem}); choose another output folder")
    return folder
