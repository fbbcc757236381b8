"""OmegaConf resolvers used by conf/ (registered on import of the package) and composing configs from Python."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

if not OmegaConf.has_resolver("not"):
    OmegaConf.register_new_resolver("not", lambda value: not value)


def group_default(group: str) -> dict:
    """conf/<group>/default.yaml as a dict: the defaults of a config group for callers given part of it."""
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / "default.yaml"))


def compose_config(config_name: str, overrides: list[str], output_dir: str | Path, cache_dir: str | Path | None = None) -> DictConfig:
    """The config ``python -m src.<entry> OVERRIDES`` would get, writing into ``output_dir`` (for tests, notebooks, benchmarks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        if cache_dir is not None:
            cfg.paths.cache_dir = str(cache_dir)
    return cfg


# key -> (is the value allowed, the allowed range in words). Checked at start, before any data is read.
def _int_at_least(low):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _positive_duration(value) -> bool:
    """A training time budget Lightning's Timer reads, above zero: ``DD:HH:MM:SS`` or timedelta keywords (a dict)."""
    import re
    from datetime import timedelta

    if value is None:
        return True
    if isinstance(value, str):
        found = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", value.strip())
        parts = dict(zip(("days", "hours", "minutes", "seconds"), map(int, found.groups()))) if found else None
    else:
        parts = dict(value) if hasattr(value, "keys") else None
    try:
        return parts is not None and timedelta(**parts) > timedelta(0)
    except (TypeError, ValueError, OverflowError):
        return False


RANGES = {
    "data.batch_size": (_int_at_least(1), "a whole number >= 1"),
    "data.eval_batch_size": (_int_at_least(1), "a whole number >= 1"),
    "data.num_workers": (_int_at_least(0), "a whole number >= 0"),
    "data.height": (lambda v: v is None or _int_at_least(16)(v), "a whole number >= 16 (pixels)"),
    "data.width": (lambda v: v is None or _int_at_least(16)(v), "a whole number >= 16 (pixels)"),
    "data.val_ratio": (lambda v: v is None or (isinstance(v, (int, float)) and 0 <= v < 1), "a number in [0, 1)"),
    "data.sampler.num_instances": (_int_at_least(1), "a whole number >= 1"),
    "data.max_pseudo_identities": (_int_at_least(1), "a whole number >= 1"),
    "trainer.max_epochs": (lambda v: v is None or v == -1 or _int_at_least(1)(v), "a whole number >= 1, or -1"),
    "trainer.devices": (lambda v: v == "auto" or v == -1 or _int_at_least(1)(v), "a whole number >= 1, -1 or auto"),
    "model.optimizer.lr": (lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0"),
    "model.attribute_class_balance": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
                                      "a number in [0, 1), e.g. 0.999 (0: plain cross-entropy)"),
    "model.attribute_focal_gamma": (lambda v: isinstance(v, (int, float)) and v >= 0,
                                    "a number >= 0, e.g. 2 (0: plain cross-entropy)"),
    "model.memory_weight": (lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0 (0: no cluster memory)"),
    "model.memory_temperature": (lambda v: isinstance(v, (int, float)) and v > 0, "a number > 0, e.g. 0.05"),
    "model.memory_momentum": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1), e.g. 0.2"),
    "top_k": (_int_at_least(1), "a whole number >= 1"),
    "attributes.consensus_k": (_int_at_least(0), "a whole number >= 0"),
    "min_p_same": (lambda v: v is None or (isinstance(v, (int, float)) and 0 < v <= 1), "a probability in (0, 1], or null"),
    "trainer.max_time": (_positive_duration, "a duration above zero, DD:HH:MM:SS (e.g. 00:01:30:00), or null for none"),
    # src.serve
    "port": (lambda v: _int_at_least(1)(v) and v <= 65535, "a whole number from 1 to 65535"),
    "workers": (_int_at_least(1), "a whole number >= 1"),
    "max_upload_bytes": (_int_at_least(1), "a whole number >= 1"),
    "max_pixels": (_int_at_least(1), "a whole number >= 1"),
    "max_top_k": (_int_at_least(1), "a whole number >= 1"),
    "max_rank": (_int_at_least(1), "a whole number >= 1"),
    "max_decodes": (_int_at_least(1), "a whole number >= 1"),
    "worker_healthcheck_timeout": (_int_at_least(1), "a whole number >= 1 (seconds)"),
    "reload_every": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0 (seconds)"),
}
CPU_PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "64-true", "64")


def check_ranges(cfg: DictConfig) -> None:
    """Every known numeric setting in range, and a precision this machine can run: else one ConfigError naming the
    key, the value and what is allowed (before minutes of work end deep inside a library)."""
    from src.errors import ConfigError
    from src.runtime import check_threads, runs_on_cpu

    if "torch_threads" in cfg:
        check_threads(cfg.get("torch_threads"))
    for key, (allowed, words) in RANGES.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if value != "<absent>" and not allowed(value):
            raise ConfigError(f"{key}={value!r}: expected {words}")
    data = cfg.get("data") or {}
    k = (data.get("sampler") or {}).get("num_instances")
    if k and data.get("batch_size", 1) % k:
        raise ConfigError(f"data.batch_size={data.batch_size}: must be a multiple of data.sampler.num_instances={k} "
                          "(P identities x K images per batch)")
    if data.get("unlabelled") and OmegaConf.select(cfg, "callbacks.progressive_resizing.steps"):
        raise ConfigError("callbacks.progressive_resizing.steps with data.unlabelled: pseudo-label rounds keep one "
                          "input size; use one of them")
    if data.get("unlabelled") and cfg.get("task_name") not in (None, "reid_strong"):
        raise ConfigError(f"data.unlabelled={list(data.unlabelled)}: clustering pseudo-labels train the strong model only "
                          f"(task=reid_strong), not task={cfg.task_name}")
    precision = str(OmegaConf.select(cfg, "trainer.precision", default=None) or "32-true")
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    if precision not in CPU_PRECISIONS and runs_on_cpu(accelerator):  # torch is asked only for a GPU precision
        raise ConfigError(f"trainer.precision={precision}: not available on the CPU; use one of {', '.join(CPU_PRECISIONS)}")
