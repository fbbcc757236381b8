"""Export a checkpoint to ONNX: ``python -m src.export ckpt_path=PATH format=onnx``.

The graph takes ``images`` (N, 3, H, W) float in [0, 1] (normalisation is inside) with a dynamic batch
axis, and returns the 12 attribute logits (``age`` ... ``downcolor``) and, for re-ID checkpoints, the
retrieval ``embedding`` first. It is written by torch's ``torch.export``-based exporter (``dynamo=True``, the
default of today's torch; it needs ``onnxscript``), not the deprecated TorchScript one.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.cli import command
from src.errors import ConfigError
from src.models.shipped import checkpoint_or_shipped
from src.runtime import apply_threads


@command("export")
def main(cfg: DictConfig) -> None:
    apply_threads(cfg.get("torch_threads"))
    if cfg.format != "onnx":
        raise ConfigError(f"format={cfg.format!r}: only 'onnx' is supported")
    ckpt_path = checkpoint_or_shipped(cfg.ckpt_path, cfg.paths, "reid", "src.export")
    output = Path(cfg.get("output") or Path(cfg.paths.output_dir) / (Path(ckpt_path).stem + ".onnx"))
    if output.is_dir():
        raise ConfigError(f"output={output}: is a folder; name the .onnx file to write")
    from src.models.onnx import export_checked  # torch and the network code load only for an export

    path, difference = export_checked(ckpt_path, output, cfg.data.height, cfg.data.width, cfg.check, cfg.tolerance)
    print(f"wrote {path}")
    if difference is not None:
        print(f"onnxruntime vs torch: max abs difference {difference:.2e} (tolerance {cfg.tolerance:.0e}, batches 1 and 3)")


if __name__ == "__main__":
    main()
