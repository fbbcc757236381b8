"""OmegaConf resolvers used by conf/ (registered on import of the package) and composing configs from Python."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

if not OmegaConf.has_resolver("not"):
    OmegaConf.register_new_resolver("not", lambda value: not value)


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
