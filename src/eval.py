"""Evaluate a checkpoint on a labelled folder: ``python -m src.eval task=reid ckpt_path=PATH data=market_course data.root=DIR``.

``split=all`` (default) evaluates every identity of the folder; ``split=val`` only the identities that
training held out (the same seeded identity split from ``data.val_ratio`` and ``data.split_seed``), so the
numbers equal the run's validation and can be recomputed with re-ranking or query expansion;
``split=train`` the others. Queries are one seeded image per (identity, camera), the gallery is
everything else (the same protocol as validation).
"""

from __future__ import annotations

from omegaconf import DictConfig

from src.cli import command
from src.evaluation import evaluate, summary
from src.models.shipped import checkpoint_or_shipped


@command("eval")
def main(cfg: DictConfig) -> None:
    kind = cfg.get("checkpoint_kind") or "attributes"
    cfg.ckpt_path = checkpoint_or_shipped(cfg.ckpt_path, cfg.paths, kind, f"src.eval task={cfg.get('task_name')}")
    print(summary(evaluate(cfg)))


if __name__ == "__main__":
    main()
