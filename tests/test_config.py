"""src/config.py: composing a command's config from Python, the ``not`` resolver, and the range checks that refuse a
bad setting (naming the key, the value and what is allowed) before any work starts."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from src.config import check_ranges, compose_config
from src.errors import ConfigError


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=-1", r"data.batch_size=-1: expected a whole number >= 1"),
    ("data.val_ratio=1.5", r"data.val_ratio=1.5: expected a number in \[0, 1\)"),
    ("trainer.precision=16-mixed", r"trainer.precision=16-mixed: not available on the CPU; use one of 32-true"),
    ("torch_threads=0", r"torch_threads=0: expected a positive whole number or auto"),
    ("trainer.max_time=00:00:00:00", r"trainer.max_time='00:00:00:00': expected a duration above zero"),
])
def test_settings_out_of_range_fail_before_any_data_is_read(make_cfg, tmp_path, override, message):
    from src.train import train

    cfg = make_cfg(["task=attributes", "data=market_course", f"data.root={tmp_path / 'nowhere'}", override])
    with pytest.raises(ConfigError, match=message):
        train(cfg)


def test_a_composed_config_writes_where_it_is_told(tmp_path):
    cfg = compose_config("train", ["task=attributes", "data.batch_size=8"], tmp_path / "out", tmp_path / "cache")
    assert cfg.paths.output_dir == str(tmp_path / "out") and cfg.paths.cache_dir == str(tmp_path / "cache")
    assert cfg.data.batch_size == 8 and cfg.task_name == "attributes"


def test_the_not_resolver_negates():
    cfg = OmegaConf.create({"on": True, "off": "${not:${on}}", "again": "${not:${off}}"})
    assert cfg.off is False and cfg.again is True


def settings(**values):
    """A config holding only the dotted keys given (check_ranges skips absent keys)."""
    cfg = OmegaConf.create({})
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
    return cfg


def test_settings_in_range_pass():
    check_ranges(settings(data__batch_size=64, data__height=None, data__val_ratio=0, trainer__max_epochs=-1,
                          trainer__devices="auto", model__optimizer__lr=3e-4, top_k=1, attributes__consensus_k=0,
                          trainer__precision="bf16-mixed", trainer__accelerator="cpu", trainer__max_time="00:01:30:00",
                          port=8000, workers=2, reload_every=0.5))
    check_ranges(settings(trainer__max_time={"hours": 1, "minutes": 30}))
    check_ranges(settings(trainer__max_time=None))
    check_ranges(OmegaConf.create({}))  # nothing to check


@pytest.mark.parametrize("key, value, message", [
    ("data.batch_size", True, r"data.batch_size=True: expected a whole number >= 1"),  # a bool is not a number here
    ("data.batch_size", 2.0, r"data.batch_size=2.0: expected a whole number >= 1"),
    ("data.height", 8, r"data.height=8: expected a whole number >= 16 \(pixels\)"),
    ("data.num_workers", -1, r"data.num_workers=-1: expected a whole number >= 0"),
    ("trainer.max_epochs", 0, r"trainer.max_epochs=0: expected a whole number >= 1, or -1"),
    ("trainer.devices", 0, r"trainer.devices=0: expected a whole number >= 1, -1 or auto"),
    ("model.optimizer.lr", 0, r"model.optimizer.lr=0: expected a number > 0"),
    ("top_k", 0, r"top_k=0: expected a whole number >= 1"),
    ("trainer.max_time", "00:00:00:00", r"trainer.max_time='00:00:00:00': expected a duration above zero, DD:HH:MM:SS"),
    ("trainer.max_time", "1:30", r"trainer.max_time='1:30': expected a duration above zero"),  # days=1, hours=30?
    ("trainer.max_time", {"hours": 0}, r"trainer.max_time=\{'hours': 0\}: expected a duration above zero"),
    ("trainer.max_time", {"fortnights": 1}, r"trainer.max_time=\{'fortnights': 1\}: expected a duration"),
    ("port", -1, r"port=-1: expected a whole number from 1 to 65535"),
    ("port", 99999, r"port=99999: expected a whole number from 1 to 65535"),
    ("port", "abc", r"port='abc': expected a whole number from 1 to 65535"),
    ("workers", "abc", r"workers='abc': expected a whole number >= 1"),
    ("reload_every", 0, r"reload_every=0: expected a number > 0 \(seconds\)"),
])
def test_a_setting_out_of_range_names_key_value_and_what_is_allowed(key, value, message):
    with pytest.raises(ConfigError, match=message):
        check_ranges(settings(**{key.replace(".", "__"): value}))


def test_a_pk_batch_must_hold_whole_identity_groups():
    pk = {"_target_": "src.data.samplers.IdentityBatches", "num_instances": 4}
    check_ranges(settings(data__sampler=pk, data__batch_size=32))
    check_ranges(settings(data__sampler={"_target_": "src.data.samplers.RandomImages"}, data__batch_size=30))
    with pytest.raises(ConfigError, match=r"data.batch_size=30: must be a multiple of data.sampler.num_instances=4 \(P "):
        check_ranges(settings(data__sampler=pk, data__batch_size=30))


def test_a_gpu_precision_is_refused_on_the_cpu_only():
    check_ranges(settings(trainer__precision="16-mixed", trainer__accelerator="gpu"))  # not checked off the CPU
    with pytest.raises(ConfigError, match="trainer.precision=16-mixed: not available on the CPU"):
        check_ranges(settings(trainer__precision="16-mixed", trainer__accelerator="cpu"))
