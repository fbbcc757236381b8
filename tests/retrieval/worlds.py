"""Shared fixtures of the retrieval tests: a tiny synthetic gallery, seeded random re-ID checkpoints, and
identity-structured embeddings for faiss tests that need no images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.attributes import HEADS
from src.data.synthetic import generate_synthetic_dataset
from src.retrieval.build import build_index
from tests.models.test_loading import save_attribute_checkpoint

HEIGHT, WIDTH = 64, 32
TINY_NET = {
    "_target_": "src.models.heads.MarketClassifier",
    "backbone": {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False},
    "feature_dim": 48,
    "hidden": 32,
}


def save_reid_checkpoint(path: Path, seed: int, images: list[Path]) -> Path:
    """A report-style re-ID checkpoint (frozen tiny stage 1 + aggregator) with seeded random weights.

    The batch-norm statistics are recomputed on ``images``, so that the random network's embeddings and
    attribute predictions differ from image to image (with default statistics every image gets the same classes).
    """
    from src.data.datasets import decode_resized
    from src.models.aggregator import AggregatorModule

    torch.manual_seed(seed)
    stage1 = path.with_suffix(".stage1.ckpt")
    save_attribute_checkpoint(stage1, TINY_NET)
    module = AggregatorModule(stage1_ckpt=str(stage1), aggregator={"embed_dim": 32, "dropout": 0.0},
                              optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    batch = torch.stack([decode_resized(p, HEIGHT, WIDTH) for p in images]).float() / 255
    norms = [m for m in module.net.modules() if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the statistics of the batch
        m.train()
    with torch.no_grad():
        module.net.aggregator(module.net.stage1.descriptor(batch))
    module.net.eval()
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("index_world")
    data = generate_synthetic_dataset(root / "synthetic", num_train_ids=1, num_test_ids=4, images_per_id=(3, 4), seed=3)
    images = sorted((Path(data) / "test").iterdir())
    return {"data": Path(data), "ckpt": save_reid_checkpoint(root / "reid.ckpt", 0, images),
            "other_ckpt": save_reid_checkpoint(root / "other.ckpt", 1, images)}


@pytest.fixture
def gallery(world, tmp_path) -> Path:
    folder = tmp_path / "gallery"
    shutil.copytree(world["data"] / "test", folder)
    return folder


def build(world, gallery, output, **kwargs):
    return build_index(kwargs.pop("ckpt", world["ckpt"]), gallery, output, height=HEIGHT, width=WIDTH, batch_size=8, **kwargs)


def clustered(num: int, dim: int = 32, num_ids: int | None = None, num_queries: int = 20, seed: int = 0):
    """(gallery, queries, gallery ids) with identity structure in a 16-d subspace, float32."""
    rng = np.random.default_rng(seed)
    num_ids = num_ids or max(num // 10, 2)
    basis = np.linalg.qr(rng.standard_normal((dim, 16)))[0].T
    centres = rng.standard_normal((num_ids, 16))
    pids = rng.integers(0, num_ids, num + num_queries)
    x = (centres[pids] + 0.4 * rng.standard_normal((len(pids), 16))) @ basis + 0.02 * rng.standard_normal((len(pids), dim))
    return x[:num].astype(np.float32), x[num:].astype(np.float32), pids[:num]


def random_probabilities(num: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {h.name: rng.dirichlet(np.ones(h.num_classes), num).astype(np.float32) for h in HEADS}
