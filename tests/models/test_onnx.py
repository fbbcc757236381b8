"""src/models/onnx.py: the export graph's fixed output order, the quiet exporter passes, and the parity check's
refusals (the exports themselves, run by ``python -m src.export``: tests/test_export.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import src.models.onnx
from src.data.attributes import HEAD_NAMES, HEADS
from src.models.onnx import ExportGraph, ParityError, _quiet_exporter_passes, export_checked, onnx_parity


class DictNet(nn.Module):
    """Logits in reversed head order (dict order must not matter), the embedding as the image means."""

    def forward(self, images):
        return {h.name: images.mean(dim=(1, 2, 3)).unsqueeze(1).expand(-1, h.num_classes) + i
                for i, h in reversed(list(enumerate(HEADS)))}

    def embed_and_classify(self, images):
        return images.mean(dim=(2, 3)), self(images)


@pytest.mark.parametrize("embeds", [True, False])
def test_outputs_come_in_the_documented_order(embeds):
    graph = ExportGraph(DictNet(), embeds)
    images = torch.rand(2, 3, 4, 4)
    outputs = graph(images)
    assert graph.output_names == (["embedding"] if embeds else []) + list(HEAD_NAMES)
    assert len(outputs) == len(graph.output_names)
    heads = outputs[1:] if embeds else outputs
    for i, (name, logits) in enumerate(zip(HEAD_NAMES, heads)):
        assert logits.shape == (2, HEADS[i].num_classes), name
        torch.testing.assert_close(logits[:, 0], images.mean(dim=(1, 2, 3)) + i)
    if embeds:
        torch.testing.assert_close(outputs[0], images.mean(dim=(2, 3)))


def test_the_exporter_passes_are_quiet_inside_and_restored_after_even_on_error():
    loggers = [logging.getLogger("onnxscript"), logging.getLogger("onnx_ir")]
    before = [logger.level for logger in loggers]
    try:
        loggers[0].setLevel(logging.INFO)
        loggers[1].setLevel(logging.ERROR)  # already quieter: kept
        with pytest.raises(RuntimeError), _quiet_exporter_passes():
            assert [logger.level for logger in loggers] == [logging.WARNING, logging.ERROR]
            raise RuntimeError("export failed")
        assert [logger.level for logger in loggers] == [logging.INFO, logging.ERROR]
    finally:
        for logger, level in zip(loggers, before):
            logger.setLevel(level)


def test_the_parity_check_without_onnxruntime_says_how_to_get_it_or_skip_it(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    with pytest.raises(ParityError, match=r"needs onnxruntime \(pip install onnxruntime\), or pass check=false"):
        onnx_parity(tmp_path / "model.ckpt", tmp_path / "model.onnx")


@pytest.mark.parametrize("difference", [2e-4, float("nan")])
def test_a_graph_differing_from_torch_or_giving_nan_is_removed_and_refused(monkeypatch, tmp_path, difference):
    def fake_export(ckpt_path, output, *args):
        output.write_bytes(b"graph")
        return output

    monkeypatch.setattr(src.models.onnx, "export_onnx", fake_export)
    monkeypatch.setattr(src.models.onnx, "onnx_parity", lambda *args, **kwargs: difference)
    with pytest.raises(ParityError, match=r"model.onnx: onnxruntime differs from torch by .* \(> 1e-04\); file removed"):
        export_checked(tmp_path / "model.ckpt", tmp_path / "model.onnx", tolerance=1e-4)
    assert not (tmp_path / "model.onnx").exists()
    monkeypatch.setattr(src.models.onnx, "onnx_parity", lambda *args, **kwargs: 5e-5)
    assert export_checked(tmp_path / "model.ckpt", tmp_path / "model.onnx") == (tmp_path / "model.onnx", 5e-5)
