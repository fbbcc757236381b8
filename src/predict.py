"""Attribute prediction: ``python -m src.predict ckpt_path=PATH input=DIR_OR_IMAGE``; with ``queries=DIR`` also the
report's ``reid_test.txt`` (the queries' matches in ``input``, cut at ``threshold`` or at ``min_p_same``)."""

from __future__ import annotations

from omegaconf import DictConfig

from src.cli import command
from src.errors import ConfigError
from src.models.shipped import checkpoint_or_shipped
from src.runtime import apply_threads


@command("predict")
def main(cfg: DictConfig) -> None:
    from src.data.records import image_records
    from src.deliverables import predict_attributes, predict_reid

    apply_threads(cfg.get("torch_threads"))
    queries = cfg.get("queries")
    if not queries and (cfg.threshold is not None or cfg.min_p_same is not None):
        raise ConfigError("threshold and min_p_same cut reid_test.txt: pass queries=DIR (the query images) too")
    ckpt_path = checkpoint_or_shipped(cfg.ckpt_path, cfg.paths, "reid" if queries else "attributes", "src.predict")
    options = dict(height=cfg.data.height, width=cfg.data.width, batch_size=cfg.data.eval_batch_size,
                   num_workers=cfg.data.num_workers, attributes=cfg.attributes, skip_corrupt=cfg.data.skip_corrupt)
    records = image_records(cfg.input, subfolders=cfg.subfolders)
    if queries:  # the report's reid_test.txt: input is the gallery
        path = predict_reid(ckpt_path, image_records(queries, subfolders=cfg.subfolders), records, cfg.paths.output_dir,
                            threshold=cfg.threshold, min_p_same=cfg.min_p_same, **options)
    else:
        path = predict_attributes(ckpt_path, records, cfg.paths.output_dir, **options)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
