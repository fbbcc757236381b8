"""src/models/aggregator.py: the report's stage 2, a trainable aggregator over a frozen stage-1 network, and how its
stage-1 checkpoint is found."""

from __future__ import annotations

import json
import os

import pytest
import torch

from src.models.aggregator import Aggregator, AggregatorModule, latest_attribute_checkpoint
from src.models.loading import CheckpointError
from tests.models.test_loading import save_attribute_checkpoint
from tests.retrieval.worlds import TINY_NET

SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}


def test_no_attribute_run_yet(tmp_path):
    with pytest.raises(CheckpointError, match="no finished attributes run.*model.stage1_ckpt"):
        latest_attribute_checkpoint(tmp_path)


def finished_run(runs, name: str, mtime: float, best: str | None) -> None:
    folder = runs / name
    folder.mkdir(parents=True)
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"best_checkpoint": best}))
    os.utime(metrics, (mtime, mtime))


def test_the_newest_finished_run_whose_best_checkpoint_exists_is_taken(tmp_path):
    runs = tmp_path / "runs"
    older, newer = tmp_path / "older.ckpt", tmp_path / "newer.ckpt"
    older.write_bytes(b"x"), newer.write_bytes(b"x")
    finished_run(runs, "a", 1000, str(older))
    finished_run(runs, "b", 2000, str(newer))
    finished_run(runs, "c", 3000, str(tmp_path / "deleted.ckpt"))  # newest, but its checkpoint is gone
    finished_run(runs, "d", 4000, None)  # newest, but it names no checkpoint
    (runs / "e").mkdir()  # no metrics.json: not finished
    assert latest_attribute_checkpoint(runs) == newer


def test_aggregator_refuses_a_missing_stage1(tmp_path):
    with pytest.raises(CheckpointError, match="stage1.ckpt: checkpoint not found"):
        AggregatorModule(stage1_ckpt=str(tmp_path / "stage1.ckpt"), optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})


def test_aggregator_is_frozen_on_stage1(tmp_path):
    path = tmp_path / "stage1.ckpt"
    save_attribute_checkpoint(path)
    module = AggregatorModule(stage1_ckpt=str(path), optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    module.train()
    assert not module.net.stage1.training
    assert all(not p.requires_grad for p in module.net.stage1.parameters())
    assert all(p.requires_grad for p in module.net.aggregator.parameters())
    embedding, logits = module.net.embed_and_classify(torch.rand(3, 3, 128, 64))
    assert embedding.shape == (3, 128) and logits["upcolor"].shape == (3, 9)


def test_embedding_and_attributes_come_from_one_stage1_pass_equal_to_separate_calls(tmp_path):
    path = tmp_path / "stage1.ckpt"
    torch.manual_seed(0)
    save_attribute_checkpoint(path, TINY_NET)
    module = AggregatorModule(stage1_ckpt=str(path), optimizer=SGD, aggregator={"embed_dim": 16}).eval()
    images = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        embedding, logits = module.net.embed_and_classify(images)
        direct = module.net(images)
        torch.testing.assert_close(embedding, module.net.embed(images))
    assert embedding.shape == (2, 16) and module.hparams.stage1_ckpt == str(path)
    for name, value in direct.items():
        torch.testing.assert_close(logits[name], value, atol=1e-5, rtol=1e-5)


def test_the_aggregator_is_batchnorm_linear_relu_dropout():
    torch.manual_seed(0)
    aggregator = Aggregator(in_features=6, embed_dim=4, dropout=0.0).eval()
    x = torch.randn(5, 6)
    bn, linear = aggregator.layers[0], aggregator.layers[1]
    expected = torch.relu(linear((x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias))
    torch.testing.assert_close(aggregator(x), expected)
    assert (aggregator(x) >= 0).all()
