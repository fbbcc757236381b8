"""A gallery index on disk: ``python -m src.index build ckpt_path=PATH gallery=DIR [output=FOLDER] [index.kind=flat]``.

Embeds every image under ``DIR`` with a re-ID checkpoint and writes an index folder: a faiss index (``flat`` exact,
``ivf_pq`` compressed, ``hnsw`` graph) beside a parquet table of per-image records (name, SHA-256, camera, the 12
predicted attributes and their probabilities) and the embeddings (see ``src/retrieval/store.py``). Running it again
updates the index: only new or changed images are embedded. ``trainer.devices=N`` (and ``trainer.num_nodes``, or
torchrun) embeds with N processes, each a shard, merged into one index. ``python -m src.index info FOLDER``
describes an index. The work is done in ``src.retrieval``.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from src.cli import command
from src.errors import ConfigError
from src.models.shipped import checkpoint_or_shipped

ACTIONS = ("build", "info")


def hydra_argv(argv: list[str]) -> list[str]:
    """``python -m src.index build ...`` / ``info FOLDER``: a leading action word becomes ``action=WORD``, and the
    folder after ``info`` (bare, or ``index=FOLDER``) becomes ``output=FOLDER``."""
    if len(argv) > 1 and argv[1] in ACTIONS:
        rest = argv[2:]
        if argv[1] == "info" and rest and ("=" not in rest[0] or rest[0].startswith("index=")):
            rest = [f"output={rest[0].removeprefix('index=')}", *rest[1:]]
        return [argv[0], f"action={argv[1]}", *rest]
    return argv


@command("index", argv=hydra_argv)
def main(cfg: DictConfig) -> None:
    # the libraries are imported per action: info reads a manifest and a table, and loads neither torch nor faiss
    if cfg.action not in ACTIONS:
        raise ConfigError(f"action={cfg.action}: expected one of {ACTIONS}")
    if cfg.action == "info":
        from src.retrieval.store import describe, load_index

        if not cfg.get("output"):
            raise ConfigError("info needs the index folder: python -m src.index info FOLDER")
        print(describe(load_index(cfg.output)))
        return
    if cfg.get("gallery") is None:
        raise ConfigError("build needs gallery=DIR (and ckpt_path=PATH, or the shipped re-ID network)")
    from src.io.atomic import check_writable
    from src.retrieval.store import default_index_path

    output = check_writable(cfg.get("output") or default_index_path(cfg.gallery, cfg.paths.root_dir))
    from src.retrieval.build import build_index
    from src.retrieval.kinds import use_threads
    from src.runtime import apply_threads

    use_threads(apply_threads(cfg.get("torch_threads")))
    settings = OmegaConf.to_container(cfg.index)
    report = build_index(
        checkpoint_or_shipped(cfg.get("ckpt_path"), cfg.paths, "reid", "src.index build"), cfg.gallery, output,
        height=cfg.data.height, width=cfg.data.width, kind=settings.pop("kind"), params=settings,
        batch_size=cfg.batch_size, num_workers=cfg.data.num_workers, rebuild=cfg.rebuild, reindex=cfg.reindex,
        subfolders=cfg.subfolders, **cfg.trainer)
    if report is not None:  # the other processes of a multi-process build report nothing
        print(report.summary())


if __name__ == "__main__":
    main()
