"""ONNX export (torch.export-based exporter): onnxruntime gives the torch outputs, for any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.models.loading import load_network
from src.models.onnx import ExportGraph, export_onnx
from tests.models.test_loading import save_attribute_checkpoint

ort = pytest.importorskip("onnxruntime")


def check_export(ckpt, tmp_path):
    path = export_onnx(ckpt, tmp_path / "model.onnx", 128, 64)
    assert sorted(p.name for p in tmp_path.glob("model.onnx*")) == ["model.onnx"]  # weights inside, no model.onnx.data
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net, contract = load_network(ckpt)
    graph = ExportGraph(net, contract.embeds).eval()
    # the batch axis is symbolic in the graph: one named dimension shared by the input and every output
    assert session.get_inputs()[0].shape == ["batch", 3, 128, 64]
    assert [o.name for o in session.get_outputs()] == graph.output_names
    assert [o.shape[0] for o in session.get_outputs()] == ["batch"] * len(graph.output_names)
    worst = {}
    for batch in (1, 3, 5):  # the graph was traced at batch 2
        images = torch.rand(batch, 3, 128, 64)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(images)]
        actual = session.run(None, {"images": images.numpy()})
        assert [a.shape for a in actual] == [e.shape for e in expected] and all(a.shape[0] == batch for a in actual)
        for e, a in zip(expected, actual):
            np.testing.assert_allclose(a, e, atol=1e-4, rtol=0)
        worst[batch] = max(float(np.abs(a - e).max()) for a, e in zip(actual, expected))
    print(f"{ckpt.name}: onnxruntime vs torch, max abs difference per batch size {worst}")
    return graph


def test_attribute_model_exports(tmp_path):
    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt)
    graph = check_export(ckpt, tmp_path)
    assert graph.output_names[0] == "age" and len(graph.output_names) == 12


def test_reid_model_exports_embedding_and_attributes(tmp_path):
    from src.models.aggregator import AggregatorModule

    stage1 = tmp_path / "stage1.ckpt"
    save_attribute_checkpoint(stage1)
    module = AggregatorModule(stage1_ckpt=str(stage1), optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    with torch.no_grad():  # non-trivial aggregator batch-norm statistics
        module.net.aggregator.layers[0].running_mean.uniform_(-1, 1)
    ckpt = tmp_path / "reid.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    graph = check_export(ckpt, tmp_path)
    assert graph.output_names[0] == "embedding"


def test_export_checks_parity_and_refuses_a_differing_graph(tmp_path, monkeypatch):
    import src.models.onnx
    from src.models.onnx import ParityError, export_checked
    from tests.retrieval.worlds import TINY_NET

    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt, TINY_NET)  # the check's logic; the full networks' parity is tested above
    path, difference = export_checked(ckpt, tmp_path / "ok.onnx", 64, 32)
    assert path.is_file() and 0.0 <= difference <= 1e-4

    # the same graph again (copied: exporting it anew would only cost time), unchecked and then differing
    import shutil

    monkeypatch.setattr(src.models.onnx, "export_onnx", lambda ckpt_path, output, *args: shutil.copy(path, output) and Path(output))
    real = src.models.onnx.onnx_parity
    monkeypatch.setattr(src.models.onnx, "onnx_parity", lambda *args, **kwargs: pytest.fail("check=false ran the check"))
    assert export_checked(ckpt, tmp_path / "unchecked.onnx", 64, 32, check=False) == (tmp_path / "unchecked.onnx", None)
    assert (tmp_path / "unchecked.onnx").is_file()
    monkeypatch.setattr(src.models.onnx, "onnx_parity", lambda *args, **kwargs: real(*args, **kwargs) + 1.0)
    with pytest.raises(ParityError, match=r"bad.onnx: onnxruntime differs from torch by 1\.0"):
        export_checked(ckpt, tmp_path / "bad.onnx", 64, 32)
    assert not (tmp_path / "bad.onnx").exists()
