"""Loading trained networks from checkpoints safely: a checkpoint is data, never code.

``torch.load(weights_only=True)`` reads tensors and plain data only, and the network config a checkpoint carries
(``hyper_parameters.net``) may name only this project's networks and backbone factories (``NETWORK_TARGETS``, at
every depth) before Hydra instantiates it: anything else is a one-line CheckpointError naming the file and the key.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate

from src.errors import KnownError


class CheckpointError(KnownError, ValueError):
    pass


# Released weights (src/release.py): the network half of a checkpoint, with this format marker. Lightning's own
# checkpoints carry none and read as version 1.
WEIGHTS_FORMAT = "market-par-reid weights"
WEIGHTS_VERSION = 1
MANIFEST = "manifest.json"  # beside released weights: each file's SHA-256, checked at every load


# What a checkpoint's network config may ask Hydra to build. A shared checkpoint naming anything else (``builtins.exec``,
# ``torch.load``, ...) would run code of its author's choosing on the machine that loads it.
NETWORK_TARGETS = frozenset({
    "src.models.heads.MarketClassifier", "src.models.strong.StrongReidNet", "src.models.aggregator.ReportReidNet",
    "src.models.backbones.timm_backbone", "src.models.backbones.torchvision_resnet",
    "src.models.backbones.efficientnet_lite",
})


def check_network_config(config, path: str | Path, key: str = "hyper_parameters.net") -> None:
    """A network config of a checkpoint is plain data whose every ``_target_`` is in NETWORK_TARGETS, with no other
    Hydra directive (``_args_``, ``_partial_``, ...) and no interpolation; else a CheckpointError naming the key."""
    if isinstance(config, dict):
        target = config.get("_target_")
        if "_target_" in config and not (isinstance(target, str) and target in NETWORK_TARGETS):
            raise CheckpointError(f"{path}: {key}._target_={str(target)[:80]!r} is not a network of this "
                                  "project; refused (a checkpoint is data, it may only name "
                                  f"{', '.join(sorted(NETWORK_TARGETS))})")
        for name, value in config.items():
            if not isinstance(name, str) or (name.startswith("_") and name.endswith("_") and name != "_target_"):
                raise CheckpointError(f"{path}: {key}.{str(name)[:40]} is not a setting of this project's networks; "
                                      "refused (a checkpoint is data)")
            check_network_config(value, path, f"{key}.{name}")
    elif isinstance(config, list | tuple):
        for i, value in enumerate(config):
            check_network_config(value, path, f"{key}[{i}]")
    elif isinstance(config, str) and "${" in config:
        raise CheckpointError(f"{path}: {key}={config[:80]!r} is an interpolation; refused (a checkpoint is data)")
    elif config is not None and not isinstance(config, bool | int | float | str):
        raise CheckpointError(f"{path}: {key} holds a {type(config).__name__}, not plain data; refused")


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: a {'folder' if path.is_dir() else 'special file'}, not a checkpoint file "
                              "(pass the .ckpt or .pt file itself, e.g. RUN/checkpoints/last.ckpt)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{path}: a git-LFS pointer file, not the weights (fetch them with `git lfs pull`)")
    check_manifest_digest(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err
    version = (checkpoint.get("format") or {}).get("version", 1) if isinstance(checkpoint, dict) else None
    if version is None:
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint of this project")
    if version > WEIGHTS_VERSION:
        raise CheckpointError(f"{path}: weights format version {version}, newer than this code reads "
                              f"({WEIGHTS_VERSION}); update the project")
    hparams = checkpoint.get("hyper_parameters")
    if isinstance(hparams, dict) and "net" in hparams:  # every consumer refuses a crafted network at read time
        check_network_config(hparams["net"], path)
    for key, scale in (checkpoint.pop("quantized", None) or {}).items():  # int8 rows of released weights
        values = checkpoint["state_dict"][key]
        checkpoint["state_dict"][key] = values.float() * scale.view(-1, *[1] * (values.dim() - 1))
    return checkpoint


def check_manifest_digest(path: Path) -> None:
    """A file listed in the ``manifest.json`` beside it must have the SHA-256 recorded there (a truncated download,
    a file replaced without its manifest entry)."""
    import json

    manifest_path = path.parent / MANIFEST
    if not manifest_path.is_file():
        return
    try:
        entry = json.loads(manifest_path.read_text()).get("files", {}).get(path.name)
    except (ValueError, AttributeError) as err:
        raise CheckpointError(f"{manifest_path}: not a weights manifest ({err})") from err
    if entry is None:
        return
    from src.data.records import file_digest

    actual = file_digest(path)
    if actual != entry.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 {actual[:16]}... differs from {manifest_path}'s "
                              f"{str(entry.get('sha256'))[:16]}... (a damaged or replaced file)")


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
    return _build(checkpoint, path, prefix, config_key), checkpoint.get("hyper_parameters", {})


def _build(checkpoint: dict, path: str | Path, prefix: str, config_key: str = "net") -> torch.nn.Module:
    hparams = checkpoint.get("hyper_parameters", {})
    if config_key not in hparams:
        raise CheckpointError(f"{path}: no '{config_key}' in its hyper-parameters; not a checkpoint of this project's task")
    check_network_config(hparams[config_key], path, f"hyper_parameters.{config_key}")
    net = instantiate(without_pretrained(hparams[config_key]))
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the network described in the checkpoint "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return net.eval()


def load_attribute_net(path: str | Path):
    """(network, hyper-parameters) of a checkpoint whose network outputs attribute logits, in eval mode."""
    return build_from_checkpoint(path, "net.")


# ------------------------------------------------------------------------------------------------ contract
class InputSizeWarning(UserWarning):
    """A network run at another input size than it was trained at (allowed when asked for explicitly)."""


_REID_TARGETS = ("src.models.aggregator.ReportReidNet", "src.models.strong.StrongReidNet")


@dataclass(frozen=True)
class Contract:
    """What a checkpoint promises: its network's kind, the inputs it was trained on and the split it was validated on.

    Written by ``MarketModule.on_save_checkpoint`` (network) and ``MarketDataModule.state_dict`` (input size, split);
    checkpoints from before contracts have ``legacy=True`` and no input size or split.
    """

    path: str
    kind: str  # "attributes" | "reid"
    height: int | None = None
    width: int | None = None
    backbone: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    metric: str = "euclidean"
    split: dict | None = None
    threshold: float | None = None
    legacy: bool = False
    calibrations: dict | None = None  # released files: P(same identity) per distance mode, read with the weights

    def calibration(self, mode: str = "plain") -> dict | None:
        """The calibrated P(same identity) of ``mode`` (``plain`` or ``rerank``) distances, checked as data; None when
        the file carries none (training checkpoints)."""
        from src.metrics.verification import check_calibration

        calibration = (self.calibrations or {}).get(mode)
        try:
            return None if calibration is None else check_calibration(calibration)
        except ValueError as err:
            raise CheckpointError(f"{self.path}: {err}") from None

    @property
    def embeds(self) -> bool:
        """Re-ID networks give retrieval embeddings besides the attribute logits."""
        return self.kind == "reid"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "height": self.height, "width": self.width, "backbone": self.backbone,
                "mean": list(self.mean) if self.mean else None, "std": list(self.std) if self.std else None,
                "metric": self.metric, "split": self.split}

    def input_size(self, height: int | None = None, width: int | None = None) -> tuple[int, int]:
        """The size to feed the network: the trained one unless ``height``/``width`` are given; another size given
        explicitly is allowed with one InputSizeWarning."""
        if height is None or width is None:
            if self.height is None:
                raise CheckpointError(f"{self.path}: records no input size (written before input contracts); "
                                      "pass data.height=H data.width=W (the size it was trained at)")
            return int(height or self.height), int(width or self.width)
        if self.height is not None and (int(height), int(width)) != (self.height, self.width):
            warnings.warn(f"{self.path}: trained at {self.height}x{self.width}, run at {height}x{width} as asked "
                          "(data.height/data.width); results differ from the trained size's", InputSizeWarning,
                          stacklevel=2)
        return int(height), int(width)


def read_contract(checkpoint: dict, path: str | Path) -> Contract:
    hparams = checkpoint.get("hyper_parameters", {})
    network = checkpoint.get("network")
    data = checkpoint.get("MarketDataModule") or {}
    threshold = checkpoint.get("retrieval_threshold")
    threshold = None if threshold is None or threshold != threshold else float(threshold)
    if network is None:  # legacy checkpoint: the kind follows from the network class it names
        target = (hparams.get("net") or {}).get("_target_", "")
        return Contract(str(path), "reid" if target in _REID_TARGETS else "attributes",
                        metric=hparams.get("metric", "euclidean"), threshold=threshold, legacy=True,
                        calibrations=checkpoint.get("calibration"))
    return Contract(str(path), network["kind"], data.get("height"), data.get("width"), network.get("backbone"),
                    tuple(network["mean"]) if network.get("mean") else None,
                    tuple(network["std"]) if network.get("std") else None,
                    network.get("metric") or hparams.get("metric") or "euclidean", data.get("split"), threshold,
                    calibrations=checkpoint.get("calibration"))


KIND_HINT = {"reid": "a re-ID checkpoint (task=reid or task=reid_strong)", "attributes": "an attributes checkpoint"}


def check_kind(contract: Contract, kind: str | None, purpose: str = "this command") -> Contract:
    """The contract's network kind must be ``kind`` (None: any), else a CheckpointError naming both."""
    if kind is not None and contract.kind != kind:
        raise CheckpointError(f"{contract.path}: holds {KIND_HINT.get(contract.kind, contract.kind)}, {purpose} "
                              f"needs {KIND_HINT.get(kind, kind)}")
    return contract


def load_network(path: str | Path, kind: str | None = None, purpose: str = "this command"
                 ) -> tuple[torch.nn.Module, Contract]:
    """(network in eval mode, its contract) of any checkpoint of this project; ``kind``: the network kind the caller
    needs ("reid" | "attributes"), checked before the network is built."""
    checkpoint = read_checkpoint(path)
    contract = check_kind(read_contract(checkpoint, path), kind, purpose)
    return _build(checkpoint, path, "net."), contract


def read_calibration(path: str | Path, mode: str = "plain") -> dict | None:
    """``Contract.calibration`` of the file at ``path`` (a caller that loads the network has it in the contract)."""
    return load_contract(path).calibration(mode)


def load_contract(path: str | Path, kind: str | None = None, purpose: str = "this command") -> Contract:
    return check_kind(read_contract(read_checkpoint(path), path), kind, purpose)
