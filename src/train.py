"""Training entry point: ``python -m src.train task=attributes`` (see conf/train.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.cli import command
from src.config import check_ranges
from src.io.atomic import write_json, write_text
from src.recipe import is_recipe
from src.runtime import apply_threads, quiet_library_noise, runs_on_cpu

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def write_test_outputs(ckpt_path: str, datamodule, output_dir: Path, reid: bool, attributes=None) -> None:
    """The report's deliverables for the source's unlabelled gallery (and queries): attribute CSV, reid_test.txt."""
    from src.deliverables import predict_attributes, predict_reid

    options = dict(batch_size=datamodule.eval_batch_size, num_workers=datamodule.num_workers,
                   skip_corrupt=datamodule.skip_corrupt, attributes=attributes)
    gallery = datamodule.source.gallery()
    queries = datamodule.source.queries() if reid else []
    announce_test_outputs(gallery, queries)
    if queries:
        path = predict_reid(ckpt_path, queries, gallery, output_dir, **options)
        log.info("re-ID matches written to %s", path)
    else:
        log.info("attribute predictions written to %s", predict_attributes(ckpt_path, gallery, output_dir, **options))


def announce_test_outputs(gallery: list, queries: list) -> None:
    """Say, before it starts, what the end-of-run work is, how big, and how to skip it (the time left is logged
    after its first batches, by src.progress)."""
    folders = [f"{len(records):,} in {Path(records[0].path).parent.name}/" for records in (gallery, queries) if records]
    files = "reid_test.txt and classification_test.csv" if queries else "classification_test.csv"
    log.info("end of run: predicting the %s unlabelled images (%s) with the best checkpoint for %s; this can take "
             "minutes on a CPU (an estimate follows the first batches); predict_test=false skips it",
             f"{len(gallery) + len(queries):,}", ", ".join(folders) or "none", files)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured task; returns the final metrics (floats). Outputs land in cfg.paths.output_dir."""
    quiet_library_noise()
    check_ranges(cfg)  # before the libraries load: a config error answers at once
    from src import run_folder

    if is_recipe(cfg):  # stages, each a src.train child process in a sub-folder (src/recipe.py)
        return _run_recipe(cfg)

    # torch_threads is checked (and applied) before any data is read, like the other settings
    threads = apply_threads(cfg.get("torch_threads")) if runs_on_cpu(cfg.trainer.get("accelerator")) else None
    if threads:
        log.info("%d torch thread%s (torch_threads=%s)", threads, "s" * (threads > 1), cfg.get("torch_threads"))
    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    if cfg.get("predict_test"):  # a missing end-of-run folder fails now, before the run folder or any training
        datamodule.source.check_unlabelled()
    datamodule.split()  # options that do not fit the data (P x K batch, val_ratio) fail before the run folder is claimed
    output_dir = Path(cfg.paths.output_dir)
    lock = run_folder.claim(output_dir, cfg.get("ckpt_path"), cfg.get("overwrite", False)) if run_folder.is_rank_zero() else None
    try:
        return _fit(cfg, datamodule, output_dir)
    finally:  # also when the run fails: the next run (or a second call in this process) is not blocked
        if lock is not None:
            lock.close()


def _run_recipe(cfg: DictConfig) -> dict[str, float]:
    from src import recipe, run_folder

    overrides = recipe.task_overrides()
    output_dir = Path(cfg.paths.output_dir)
    lock = run_folder.claim(output_dir, cfg.get("ckpt_path"), cfg.get("overwrite", False))
    try:
        summary = recipe.run_recipe(cfg, overrides, output_dir)
    finally:
        lock.close()
    log.info("recipe finished: %s", output_dir)
    val = summary.get("release", {}).get("val", {})
    return {f"release/{key}": float(value) for key, value in val.items()}


def _fit(cfg: DictConfig, datamodule: pl.LightningDataModule, output_dir: Path) -> dict[str, float]:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ProgressBar

    from src import run_folder

    ckpt_path = run_folder.resolve_resume(output_dir, cfg.get("ckpt_path"))
    write_text(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    model: pl.LightningModule = instantiate(cfg.model, _recursive_=False)
    callbacks = instantiate_all(cfg.get("callbacks"))
    if cfg.trainer.get("enable_progress_bar") is False:  # the bar's callback would contradict the trainer's setting
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    if cfg.get("validate_ckpt"):  # validation only, e.g. to compare 1 vs N processes on one checkpoint
        trainer.validate(model, datamodule=datamodule, ckpt_path=cfg.validate_ckpt, weights_only=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if trainer.is_global_zero:
            write_json(output_dir / "metrics.json", metrics)
        return metrics
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)  # data only
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    if best:
        metrics["best_model_score"] = float(checkpoint.best_model_score)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", {"best_checkpoint": best, **metrics})
        if cfg.get("predict_test") and best:
            write_test_outputs(best, datamodule, output_dir, model.network_kind == "reid", cfg.get("attributes"))
    return metrics


@command("train")
def main(cfg: DictConfig) -> float | None:
    from src.run_folder import is_rank_zero

    metrics = train(cfg)
    if is_rank_zero():  # the last line of a training: where its checkpoints, metrics, curves and predictions are
        print(f"run folder: {cfg.paths.output_dir}")
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    main()
