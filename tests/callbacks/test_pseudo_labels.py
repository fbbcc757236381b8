"""Training with clustering pseudo-labels (data.unlabelled): rounds, honest validation, resume, bad input."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from pytorch_lightning.callbacks import Timer

from src.callbacks.pseudo_labels import PseudoLabelRounds, shard_indices
from src.config import check_ranges, compose_config
from src.data.pseudo import PSEUDO_PID_BASE
from src.data.records import file_digest
from src.errors import ConfigError
from src.train import train
from tests.conftest import ROOT

TINY = [
    "task=reid_strong", "data.num_workers=0", "data.source.num_train_ids=16", "data.source.num_test_ids=8",
    "data.val_ratio=0.25", "data.height=64", "data.width=32", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
    "predict_test=false", "data.unlabelled=[test,queries]", "data.max_pseudo_identities=40",
    "callbacks.pseudo_labels.start_epoch=1", "callbacks.pseudo_labels.every=1", "callbacks.pseudo_labels.k1=5",
    "callbacks.pseudo_labels.k2=2", "callbacks.pseudo_labels.eps=0.6", "callbacks.pseudo_labels.min_samples=2",
]


def checkpoint_state(path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint["MarketDataModule"]["pseudo_labels"], checkpoint["state_dict"]["net.id_classifier.weight"]


def test_rounds_train_on_pseudo_identities_never_on_validation_images_and_survive_a_resume(tmp_path, cache_dir):
    run = tmp_path / "run"
    rounds = [*TINY, "callbacks.pseudo_labels.every=5"]  # one round, before epoch 1 (the next would be before epoch 6)
    cfg = compose_config("train", [*rounds, "trainer.max_epochs=2"], run, cache_dir)
    train(cfg)
    history = pd.read_csv(run / "metrics.csv")
    logged = history.dropna(subset=["pseudo/round"])
    assert logged["epoch"].tolist() == [0] and logged["pseudo/round"].tolist() == [1]
    first = logged.iloc[0]
    assert first["pseudo/clusters"] >= 1 and first["pseudo/clustered_images"] + first["pseudo/outliers"] > 0
    assert first["pseudo/val_identities"] == 4 and 0 <= first["pseudo/val_pairwise_f"] <= 1

    state, weight = checkpoint_state(run / "checkpoints" / "last.ckpt")
    clusters = int(state["cluster_ids"].max()) + 1
    assert state["round"] == 1 and clusters == first["pseudo/clusters"]
    labelled = weight.shape[0] - 40
    assert torch.count_nonzero(weight[labelled + clusters :]) == 0 and torch.count_nonzero(weight[labelled : labelled + clusters]) > 0

    # the checkpoint's clusters rebuild the training set: labelled training identities + pseudo ones, no val image
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    datamodule.load_state_dict(torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["MarketDataModule"])
    pseudo_records = [r for r in datamodule.train_set.records if r.pid >= PSEUDO_PID_BASE]
    assert len(pseudo_records) == first["pseudo/clustered_images"]
    assert {r.path.parent.name for r in pseudo_records} <= {"test", "queries"}
    val_content = {file_digest(r.path) for r in datamodule.val_records}
    assert not val_content & {file_digest(r.path) for r in datamodule.train_set.records}
    assert len(datamodule.pid_to_label) == labelled + clusters

    # resume: the same pseudo identities, their classifier rows trained further, no row past them touched
    train(compose_config("train", [*rounds, "trainer.max_epochs=3", "ckpt_path=last"], run, cache_dir))
    resumed_state, resumed_weight = checkpoint_state(run / "checkpoints" / "last.ckpt")
    assert resumed_state["round"] == 1 and torch.equal(resumed_state["cluster_ids"], state["cluster_ids"])
    assert not torch.equal(resumed_weight[labelled : labelled + clusters], weight[labelled : labelled + clusters])
    assert torch.count_nonzero(resumed_weight[labelled + clusters :]) == 0
    assert pd.read_csv(run / "metrics.csv")["epoch"].max() == 2


def test_a_round_without_clusters_warns_and_training_goes_on(tmp_path, cache_dir):
    cfg = compose_config("train", [*TINY, "trainer.max_epochs=2", "callbacks.pseudo_labels.eps=1e-6",
                                   "callbacks.pseudo_labels.min_samples=8",
                                   "callbacks.pseudo_labels.measure_val=false"], tmp_path / "run", cache_dir)
    with pytest.warns(RuntimeWarning, match=r"round 1: DBSCAN found no cluster among \d+ unlabelled images"):
        metrics = train(cfg)
    assert metrics["pseudo/clusters"] == 0 and metrics["val/mAP"] > 0


def test_bad_settings_are_refused_before_training(tmp_path, cache_dir):
    cfg = compose_config("train", [*TINY, "trainer.max_epochs=1", "callbacks.pseudo_labels.min_samples=100000"], tmp_path / "a", cache_dir)
    with pytest.raises(ConfigError, match=r"min_samples=100000 is larger than the \d+ unlabelled images"):
        train(cfg)
    with pytest.raises(ConfigError, match=r"data.unlabelled=\[.test.\]: .*\(task=reid_strong\), not task=attributes"):
        check_ranges(compose_config("train", ["task=attributes", "data.unlabelled=[test]"], tmp_path / "b"))
    with pytest.raises(ConfigError, match="data.max_pseudo_identities=0"):
        check_ranges(compose_config("train", ["task=reid_strong", "data.max_pseudo_identities=0"], tmp_path / "c"))


@pytest.mark.parametrize(("elapsed_s", "expect_round"), [(600.0, True), (3300.0, False)])
def test_a_round_is_skipped_when_max_time_ends_training_before_the_next_epoch(monkeypatch, elapsed_s, expect_round):
    timer = Timer(duration={"hours": 1})  # 10 epochs done: 60 s each at 600 s elapsed, 330 s each at 3,300 s
    monkeypatch.setattr(timer, "time_elapsed", lambda stage="train": elapsed_s)
    trainer = SimpleNamespace(callbacks=[timer], current_epoch=9, max_epochs=50, num_training_batches=4, world_size=1)
    rounds = PseudoLabelRounds(k1=5, k2=2, eps=0.6, min_samples=2, start_epoch=10, every=5)
    rounds.active = True
    assert rounds.round_due(trainer, batch_idx=3) is expect_round
    assert rounds.round_due(trainer, batch_idx=2) is False  # not the epoch's last batch
    trainer.callbacks = []  # no max_time: the time never stops a round
    assert rounds.round_due(trainer, batch_idx=3) is True


@pytest.mark.parametrize("num_images", [1, 2, 5, 6, 7])
@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shares_cover_every_image_and_have_equal_counts(num_images, world_size):
    shares = [shard_indices(num_images, rank, world_size) for rank in range(world_size)]
    assert len({len(share) for share in shares}) == 1
    assert sorted(set(torch.cat(shares).tolist())) == list(range(num_images))


@pytest.mark.parametrize("num_images", [5, 6])
def test_embeddings_split_across_two_ranks_and_gathered_equal_one_process(monkeypatch, num_images):
    features = torch.randn(num_images, 4)
    heads = {"gender": torch.rand(num_images, 2)}
    rounds = PseudoLabelRounds(k1=5, k2=2, eps=0.6, min_samples=2)

    def embed(pl_module, dataset, desc):  # a network's outputs for the images it is given
        rows = torch.as_tensor(dataset.indices if isinstance(dataset, torch.utils.data.Subset) else range(len(dataset)))
        return features[rows], {name: values[rows] for name, values in heads.items()}

    monkeypatch.setattr(rounds, "_embed", embed)
    dataset = list(range(num_images))
    one = rounds._embed_shared(SimpleNamespace(world_size=1, global_rank=0), None, dataset, "one")
    rank1_parts = []

    class Rank(SimpleNamespace):  # all_gather stacks this rank's tensor over rank 1's, in call order
        def all_gather(self, tensor):
            if self.global_rank == 1:
                rank1_parts.append(tensor)
                return torch.stack([tensor, tensor])
            return torch.stack([tensor, rank1_parts.pop(0)])

    for rank in (1, 0):
        trainer = SimpleNamespace(world_size=2, global_rank=rank)
        gathered = rounds._embed_shared(trainer, Rank(trainer=trainer, global_rank=rank), dataset, "two")
    assert torch.equal(gathered[0], one[0]) and torch.equal(gathered[1]["gender"], one[1]["gender"])


def test_rounds_under_two_process_ddp_agree_and_resume(tmp_path, cache_dir):
    """Two processes (gloo): each embeds half the unlabelled images, both cluster the gathered set; the cluster
    memory moves with the global batch on both."""
    run = tmp_path / "ddp"
    overrides = [*TINY, "trainer=ddp", "trainer.devices=2", "torch_threads=1", "data.batch_size=16",
                 "trainer.max_epochs=2", "model.memory_weight=1.0", f"hydra.run.dir={run}", f"paths.cache_dir={cache_dir}"]
    result = subprocess.run([sys.executable, "-m", "src.train", *overrides], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = pd.read_csv(run / "metrics.csv").dropna(subset=["pseudo/round"])
    assert logged["pseudo/round"].tolist() == [1]
    first = logged.iloc[0]
    state, weight = checkpoint_state(run / "checkpoints" / "last.ckpt")
    clusters = int(state["cluster_ids"].max()) + 1
    assert clusters == first["pseudo/clusters"] >= 1
    # every unlabelled image got a cluster id or -1: none lost in the split across ranks
    assert len(state["cluster_ids"]) == first["pseudo/clustered_images"] + first["pseudo/outliers"]
    labelled = weight.shape[0] - 40
    assert torch.count_nonzero(weight[labelled : labelled + clusters]) > 0
    memory = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert int(memory["memory.in_use"]) == clusters
    assert pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss_memory"])["train/loss_memory"].iloc[-1] > 0


def test_attribute_targets_are_cluster_means_or_confident_majority_votes():
    from src.callbacks.pseudo_labels import cluster_attribute_targets

    probabilities = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8],  # cluster 0: 2 of 3 vote class 0
                                  [0.1, 0.9], [0.3, 0.7],  # cluster 1: both vote class 1
                                  [0.9, 0.1]])  # outlier (-1): no part in any target
    clusters = torch.tensor([0, 0, 0, 1, 1, -1]).numpy()
    means = cluster_attribute_targets(probabilities, clusters, 2, None)
    torch.testing.assert_close(means, torch.tensor([[0.5, 0.5], [0.2, 0.8]]))
    votes = cluster_attribute_targets(probabilities, clusters, 2, 0.6)
    torch.testing.assert_close(votes, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    strict = cluster_attribute_targets(probabilities, clusters, 2, 0.9)  # 2 of 3 is under 90%: cluster 0 gets none
    torch.testing.assert_close(strict, torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ConfigError, match=r"vote_confidence=1.5: a share of a cluster's images, in \(0, 1\]"):
        PseudoLabelRounds(k1=20, k2=6, eps=0.5, min_samples=4, vote_confidence=1.5)


def test_the_mean_teacher_averages_the_weights_step_by_step_and_resumes_from_its_state():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    rounds = PseudoLabelRounds(k1=5, k2=2, eps=0.6, min_samples=2, teacher_decay=0.75)
    rounds.update_teacher(net)  # the first step copies the network
    first = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(4.0)
        net[1].running_mean.fill_(2.0)
    rounds.update_teacher(net)
    torch.testing.assert_close(rounds.teacher.module[0].weight, first + 0.25 * 4.0)
    torch.testing.assert_close(rounds.teacher.module[1].running_mean, torch.full((2,), 0.5))  # statistics averaged too
    assert not rounds.teacher.module.training  # it only embeds

    resumed = PseudoLabelRounds(k1=5, k2=2, eps=0.6, min_samples=2, teacher_decay=0.75)
    resumed.load_state_dict(rounds.state_dict())
    resumed.update_teacher(net)  # the saved teacher, then this step
    torch.testing.assert_close(resumed.teacher.module[0].weight, 0.75 * (first + 1.0) + 0.25 * (first + 4.0))
    with pytest.raises(ConfigError, match=r"teacher_decay=1.0: the moving average's decay per step, in \(0, 1\)"):
        PseudoLabelRounds(k1=5, k2=2, eps=0.6, min_samples=2, teacher_decay=1.0)


def test_rounds_embed_with_the_mean_teacher_which_checkpoints_keep(tmp_path, cache_dir):
    run = tmp_path / "run"
    overrides = [*TINY, "callbacks.pseudo_labels.every=5", "callbacks.pseudo_labels.teacher_decay=0.9"]
    train(compose_config("train", [*overrides, "trainer.max_epochs=2"], run, cache_dir))
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    teacher = next(state["teacher"] for key, state in checkpoint["callbacks"].items() if "PseudoLabelRounds" in key)
    student = checkpoint["state_dict"]["net.bnneck.weight"]
    assert teacher["module.bnneck.weight"].shape == student.shape and not torch.equal(teacher["module.bnneck.weight"], student)
    assert int(teacher["n_averaged"]) == checkpoint["global_step"]
    assert pd.read_csv(run / "metrics.csv").dropna(subset=["pseudo/round"])["pseudo/clusters"].iloc[0] >= 1
    train(compose_config("train", [*overrides, "trainer.max_epochs=3", "ckpt_path=last"], run, cache_dir))
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    teacher = next(state["teacher"] for key, state in resumed["callbacks"].items() if "PseudoLabelRounds" in key)
    assert int(teacher["n_averaged"]) == resumed["global_step"]  # continued from the saved average, not restarted
