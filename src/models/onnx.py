"""A checkpoint as an ONNX graph (``python -m src.export``): ``images`` (N, 3, H, W) float in [0, 1] in, the 12
attribute logits (and, for re-ID checkpoints, the retrieval ``embedding`` first) out; written by torch's
``torch.export``-based exporter and checked against torch with onnxruntime."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from torch import nn

from src.data.attributes import HEAD_NAMES
from src.errors import KnownError
from src.io.atomic import atomic_path
from src.models.loading import load_network


class ExportGraph(nn.Module):
    """Flattens the network's dict outputs into a tuple with a fixed order for ONNX."""

    def __init__(self, net: nn.Module, embeds: bool):
        super().__init__()
        self.net = net
        self.has_embedding = embeds

    @property
    def output_names(self) -> list[str]:
        return (["embedding"] if self.has_embedding else []) + list(HEAD_NAMES)

    def forward(self, images: torch.Tensor):
        if self.has_embedding:
            embedding, logits = self.net.embed_and_classify(images)
            return (embedding, *(logits[name] for name in HEAD_NAMES))
        logits = self.net(images)
        return tuple(logits[name] for name in HEAD_NAMES)


def export_onnx(ckpt_path: str | Path, output: str | Path, height: int | None = None, width: int | None = None,
                opset: int = 18) -> Path:
    """The graph at the checkpoint's input size (another only when given, with a warning), batch axis dynamic.

    ``torch.export`` traces the network once with a symbolic batch dimension (named ``batch`` in the ONNX
    graph's input and outputs); opset 18 is the one the exporter's operator library is written in, so no
    version conversion runs. The weights are kept inside the file (the exporter would otherwise write them
    beside it as ``<file>.data``).
    """
    net, contract = load_network(ckpt_path)
    height, width = contract.input_size(height, width)
    graph = ExportGraph(net, contract.embeds).eval()
    example = torch.rand(2, 3, height, width)
    output = Path(output)
    with atomic_path(output) as tmp, _quiet_exporter_passes():
        torch.onnx.export(
            graph, (example,), str(tmp), dynamo=True, opset_version=opset, input_names=["images"],
            output_names=graph.output_names, dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}},
            external_data=False, verbose=False,  # one self-contained file: the weights inside (networks here are < 2 GB)
        )
    return output


@contextlib.contextmanager
def _quiet_exporter_passes():
    """The exporter's graph passes (onnxscript, onnx_ir) log every node they fold or rename at INFO, which an entry
    point's logging (Hydra: INFO to the console) would print by the hundred; their warnings still show."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class ParityError(KnownError, RuntimeError):
    """The exported graph's outputs differ from the checkpoint's torch outputs."""


def onnx_parity(ckpt_path: str | Path, onnx_path: str | Path, batch_sizes=(1, 3), seed: int = 0) -> float:
    """Max absolute difference between onnxruntime and torch over every output, on random images of each batch size."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ParityError("the parity check needs onnxruntime (pip install onnxruntime), or pass check=false") from err
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    net, contract = load_network(ckpt_path)
    graph = ExportGraph(net, contract.embeds).eval()
    _, _, height, width = session.get_inputs()[0].shape  # the size the graph was exported at
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batch_sizes:
        images = torch.rand(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(images)]
        actual = session.run(None, {"images": images.numpy()})
        worst = max([worst, *(float(abs(a - e).max()) for a, e in zip(actual, expected))])
    return worst


def export_checked(ckpt_path: str | Path, output: str | Path, height: int | None = None, width: int | None = None,
                   check: bool = True, tolerance: float = 1e-4) -> tuple[Path, float | None]:
    """Export, then (``check``) compare onnxruntime with torch; above ``tolerance`` the file is removed and it fails."""
    path = export_onnx(ckpt_path, output, height, width)
    if not check:
        return path, None
    difference = onnx_parity(ckpt_path, path)
    if not difference <= tolerance:
        path.unlink()
        raise ParityError(f"{path}: onnxruntime differs from torch by {difference:.2e} (> {tolerance:.0e}); file removed")
    return path, difference
