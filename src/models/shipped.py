"""The released networks in ``weights/`` that commands use when no ``ckpt_path`` is given (``paths.shipped``)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from src.errors import ConfigError

log = logging.getLogger(__name__)


def checkpoint_or_shipped(ckpt_path: str | None, paths: DictConfig, kind: str, command: str) -> str:
    """``ckpt_path`` when given; else the shipped network for ``kind`` (``reid`` or ``attributes``), named in the log."""
    if ckpt_path:
        return str(ckpt_path)
    name = paths.shipped[kind]
    path = Path(paths.weights_dir) / name
    if not path.is_file():
        raise ConfigError(f"{path}: {command} without ckpt_path uses the shipped {kind} network, and this file is "
                          "missing; pass ckpt_path=PATH")
    log.info("%s: the shipped %s network %s (ckpt_path=PATH uses another)", command, kind, path)
    return str(path)
