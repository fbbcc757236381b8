"""Attribute prediction: ``python -m src.predict ckpt_path=PATH input=DIR_OR_IMAGE``."""

from __future__ import annotations

from omegaconf import DictConfig

from src.cli import command
from src.models.shipped import checkpoint_or_shipped
from src.runtime import apply_threads


@command("predict")
def main(cfg: DictConfig) -> None:
    from src.data.records import image_records
    from src.deliverables import predict_attributes

    apply_threads(cfg.get("torch_threads"))
    ckpt_path = checkpoint_or_shipped(cfg.ckpt_path, cfg.paths, "attributes", "src.predict")
    path = predict_attributes(
        ckpt_path, image_records(cfg.input, subfolders=cfg.subfolders), cfg.paths.output_dir,
        height=cfg.data.height, width=cfg.data.width,
        batch_size=cfg.data.eval_batch_size, num_workers=cfg.data.num_workers,
        attributes=cfg.attributes, skip_corrupt=cfg.data.skip_corrupt,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
