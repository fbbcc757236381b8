"""Loading trained networks from checkpoints safely (``weights_only=True``: tensors and plain data only)."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate


class CheckpointError(ValueError):
    pass


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err


def without_pretrained(config):
    """Copy of a network config with every ``pretrained`` flag off: the checkpoint holds the trained weights."""
    if isinstance(config, dict):
        return {k: (False if k == "pretrained" else without_pretrained(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [without_pretrained(v) for v in config]
    return config


def build_from_checkpoint(path: str | Path, prefix: str, config_key: str = "net") -> tuple[torch.nn.Module, dict]:
    """Rebuild ``hparams[config_key]`` (no pretrained download) and load the ``prefix``-ed weights into it."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    if config_key not in hparams:
        raise CheckpointError(f"{path}: no '{config_key}' in its hyper-parameters; not a checkpoint of this project's task")
    net = instantiate(without_pretrained(hparams[config_key]))
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the network described in the checkpoint "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return net.eval(), hparams


def load_attribute_net(path: str | Path):
    """(network, hyper-parameters) of a checkpoint whose network outputs attribute logits, in eval mode."""
    return build_from_checkpoint(path, "net.")
