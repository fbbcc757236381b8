"""src/losses/cluster_memory.py and ``model.memory_weight``: the cluster-memory contrastive loss over pseudo identities."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from src.config import check_ranges, compose_config
from src.errors import ConfigError
from src.losses.cluster_memory import ClusterMemory
from src.train import train
from tests.callbacks.test_pseudo_labels import TINY


def test_the_loss_is_a_tempered_softmax_over_the_centroids_in_use_and_backward_survives_the_update():
    memory = ClusterMemory(rows=5, dim=3, temperature=0.1, momentum=0.2)
    centroids = torch.tensor([[2.0, 0, 0], [0, 3.0, 0], [0, 0, 1.0]])
    memory.restart(centroids)
    assert int(memory.in_use) == 3 and torch.count_nonzero(memory.centroids[3:]) == 0
    torch.testing.assert_close(memory.centroids[:3].norm(dim=1), torch.ones(3))
    features = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 2.0]], requires_grad=True)
    clusters = torch.tensor([0, 2])
    loss = memory(features, clusters)
    expected = F.cross_entropy(F.normalize(features, dim=1) @ F.normalize(centroids, dim=1).T / 0.1, clusters)
    torch.testing.assert_close(loss, expected)
    memory.update(features, clusters)  # in place, between the forward and the backward of a training step
    loss.backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_a_gradient_step_pulls_each_image_to_its_own_centroid():
    memory = ClusterMemory(rows=4, dim=8, temperature=0.05)
    memory.restart(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    features = torch.randn(6, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    clusters = torch.tensor([0, 1, 2, 3, 0, 1])
    before = memory(features, clusters)
    before.backward()
    with torch.no_grad():
        after = memory(features - 0.05 * features.grad, clusters)
    assert after < before


def test_the_update_moves_only_the_batch_clusters_by_momentum_and_keeps_unit_rows():
    memory = ClusterMemory(rows=3, dim=2, momentum=0.25)
    memory.restart(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    untouched = memory.centroids[1].clone()
    memory.update(torch.tensor([[0.0, 2.0], [0.0, 4.0], [3.0, 0.0]]), torch.tensor([0, 0, 2]))
    # cluster 0: 0.25 x (1, 0) + 0.75 x mean of the normalised images (0, 1), renormalised
    torch.testing.assert_close(memory.centroids[0], F.normalize(torch.tensor([0.25, 0.75]), dim=0))
    torch.testing.assert_close(memory.centroids[2], F.normalize(torch.tensor([-0.25 + 0.75, 0.0]), dim=0))
    assert torch.equal(memory.centroids[1], untouched)


def test_no_centroids_or_no_pseudo_images_give_zero_loss():
    memory = ClusterMemory(rows=3, dim=2)
    assert memory(torch.randn(2, 2), torch.tensor([0, 1])) == 0  # before the first round
    memory.restart(torch.randn(2, 2))
    assert memory(torch.randn(0, 2), torch.tensor([], dtype=torch.long)) == 0


def test_training_with_the_memory_logs_its_loss_checkpoints_the_centroids_and_resumes(tmp_path, cache_dir):
    run = tmp_path / "run"
    overrides = [*TINY, "callbacks.pseudo_labels.every=5", "model.memory_weight=1.0"]
    train(compose_config("train", [*overrides, "trainer.max_epochs=2"], run, cache_dir))
    history = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss_memory"]).set_index("epoch")
    assert history.loc[0, "train/loss_memory"] == 0  # no clusters before the first round
    assert history.loc[1, "train/loss_memory"] > 0
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    clusters = int(checkpoint["MarketDataModule"]["pseudo_labels"]["cluster_ids"].max()) + 1
    assert int(state["memory.in_use"]) == clusters and state["memory.centroids"].shape[0] == 40
    torch.testing.assert_close(state["memory.centroids"][:clusters].norm(dim=1), torch.ones(clusters))
    assert torch.count_nonzero(state["memory.centroids"][clusters:]) == 0
    train(compose_config("train", [*overrides, "trainer.max_epochs=3", "ckpt_path=last"], run, cache_dir))
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert int(resumed["memory.in_use"]) == clusters
    assert not torch.equal(resumed["memory.centroids"][:clusters], state["memory.centroids"][:clusters])


def test_bad_memory_settings_are_refused(tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=r"model.memory_weight=1.0: the cluster memory holds pseudo identities; set data.unlabelled"):
        train(compose_config("train", [*TINY, "data.unlabelled=[]", "model.memory_weight=1.0", "trainer.max_epochs=1"],
                             tmp_path / "a", cache_dir))
    for key, value in (("model.memory_weight", -1), ("model.memory_temperature", 0), ("model.memory_momentum", 1.0)):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            check_ranges(compose_config("train", ["task=reid_strong", f"{key}={value}"], tmp_path / "b"))
