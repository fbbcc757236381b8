"""Clustering rounds over the unlabelled images (``data.unlabelled``): pseudo identities for the strong model.

Every ``every`` epochs from ``start_epoch`` on, at the end of the last training batch of the epoch before (so the
epoch's validation checkpoint already holds the new labels and a resumed run continues with them):

1. embed the unlabelled images with the current network (pre-decoded once by the datamodule);
2. k-reciprocal Jaccard distances (``src.metrics.rerank.jaccard_graph``, bounded memory) and DBSCAN;
3. clusters become identities (``PSEUDO_PID_BASE + cluster``); outliers are left out of training;
4. the identity classifier's pseudo rows restart at the cluster centroids (``StrongReidModule.start_pseudo_identities``).

With ``teacher_decay`` (mean teacher) the images are embedded by an exponential moving average of the network's weights,
updated after every training step and kept in checkpoints, instead of the network itself.

The same procedure clusters the validation split's images, whose identities are known, and logs the pairwise
precision / recall / F and the number of clusters against the true identities (``pseudo/val_*``) each round.

Under DDP rank 0 decides whether a round is due, each rank embeds every ``world_size``-th image and the embeddings
are all-gathered, so every rank clusters the same tensors; rank 0's cluster ids are broadcast, so the identity
classifier's new rows, the optimizer state and the training set stay identical across ranks.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Subset

from src.data.datasets import ImageDataset
from src.errors import ConfigError
from src.inference import classify_loader
from src.metrics.clustering import cluster_embeddings, cluster_means, pairwise_scores
from src.models.gather import gather_unique

log = logging.getLogger(__name__)


class PseudoLabelRounds(pl.Callback):
    def __init__(self, *, k1: int, k2: int, eps: float, min_samples: int, start_epoch: int = 10, every: int = 5,
                 batch_size: int = 256, measure_val: bool = True, flip: bool = False, vote_confidence: float | None = None,
                 teacher_decay: float | None = None):
        """The clustering parameters have their defaults in ``conf/callbacks/pseudo_labels.yaml`` only."""
        if vote_confidence is not None and not 0 < vote_confidence <= 1:
            raise ConfigError(f"callbacks.pseudo_labels.vote_confidence={vote_confidence}: a share of a cluster's images, "
                              "in (0, 1], or null for the mean predicted probabilities")
        if teacher_decay is not None and not 0 < teacher_decay < 1:
            raise ConfigError(f"callbacks.pseudo_labels.teacher_decay={teacher_decay}: the moving average's decay per step, "
                              "in (0, 1) (e.g. 0.999), or null to cluster with the network itself")
        if start_epoch < 1 or every < 1:
            raise ConfigError(f"callbacks.pseudo_labels: start_epoch ({start_epoch}) and every ({every}) must be >= 1")
        if not 0 < eps <= 1:
            raise ConfigError(f"callbacks.pseudo_labels.eps={eps}: a Jaccard distance, in (0, 1]")
        self.start_epoch, self.every = start_epoch, every
        self.k1, self.k2, self.eps, self.min_samples = k1, k2, eps, min_samples
        self.batch_size, self.measure_val, self.flip, self.vote_confidence = batch_size, measure_val, flip, vote_confidence
        self.teacher_decay = teacher_decay
        self.teacher: AveragedModel | None = None  # built at the first training step (the network exists then)
        self.teacher_state: dict | None = None  # from a resumed checkpoint, loaded into the teacher once it exists
        self.active = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        self.active = getattr(datamodule, "pseudo", None) is not None
        if not self.active:
            return
        if not hasattr(pl_module, "start_pseudo_identities"):
            raise ConfigError("data.unlabelled: clustering pseudo-labels train the strong model only (task=reid_strong)")
        if self.min_samples > len(datamodule.pseudo.all_records):
            raise ConfigError(f"callbacks.pseudo_labels.min_samples={self.min_samples} is larger than the "
                              f"{len(datamodule.pseudo.all_records)} unlabelled images of data.unlabelled")
        trainer.reload_dataloaders_every_n_epochs = 1  # a round changes the training set

    def round_due(self, trainer: pl.Trainer, batch_idx: int) -> bool:
        next_epoch = trainer.current_epoch + 1
        due = (self.active and batch_idx == trainer.num_training_batches - 1 and next_epoch < trainer.max_epochs
               and next_epoch >= self.start_epoch and (next_epoch - self.start_epoch) % self.every == 0)
        if due and not _time_for_another_epoch(trainer):
            log.info("pseudo-labels: round before epoch %d skipped: trainer.max_time ends training before that epoch "
                     "could finish", next_epoch)
            due = False
        if self.active and trainer.world_size > 1 and batch_idx == trainer.num_training_batches - 1:
            due = trainer.strategy.broadcast(due, src=0)  # the ranks' clocks differ: rank 0's decides for all
        return due

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.active and self.teacher_decay is not None:
            self.update_teacher(pl_module.net)
        if self.round_due(trainer, batch_idx):
            for name, value in self.run_round(trainer, pl_module).items():
                pl_module.log(f"pseudo/{name}", float(value), on_step=False, on_epoch=True, batch_size=1)

    @torch.no_grad()
    def update_teacher(self, net: torch.nn.Module) -> None:
        """The mean teacher's weights and batch-norm statistics <- decay x theirs + (1 - decay) x the network's."""
        if self.teacher is None:
            self.teacher = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(self.teacher_decay), use_buffers=True).eval()
            if self.teacher_state is not None:
                self.teacher.load_state_dict(self.teacher_state)
                self.teacher_state = None
        self.teacher.update_parameters(net)

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict()} if self.teacher is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.teacher_state = state_dict.get("teacher") if self.teacher_decay is not None else None

    @torch.no_grad()
    def _embed(self, pl_module, dataset: ImageDataset, desc: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=0)
        net = self.teacher.module if self.teacher is not None else pl_module.net
        network_flips = getattr(net, "flip_test", False)
        net.flip_test = self.flip  # flip TTA doubles the cost of a round
        try:
            return classify_loader(net, loader, flip_test=self.flip, embeds=True, desc=desc)
        finally:
            net.flip_test = network_flips

    def _embed_shared(self, trainer: pl.Trainer, pl_module, dataset, desc: str
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every image embedded once across the ranks, all of them on every rank (one process: ``_embed``)."""
        world, rank = trainer.world_size, trainer.global_rank
        if world == 1:
            return self._embed(pl_module, dataset, desc)
        indices = shard_indices(len(dataset), rank, world)
        embeddings, probabilities = self._embed(pl_module, Subset(dataset, indices.tolist()), f"{desc} (rank {rank})")
        parts = gather_unique(pl_module, {"index": indices, "embedding": embeddings,
                                          **{f"head/{name}": p for name, p in probabilities.items()}})
        return parts["embedding"], {name[len("head/"):]: p for name, p in parts.items() if name.startswith("head/")}

    def run_round(self, trainer: pl.Trainer, pl_module) -> dict[str, float]:
        datamodule, pseudo = trainer.datamodule, trainer.datamodule.pseudo
        started = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        try:
            dataset = ImageDataset(pseudo.all_records, datamodule.height, datamodule.width, None, pseudo.cache)
            embeddings, probabilities = self._embed_shared(trainer, pl_module, dataset,
                                                           f"pseudo-labels round {pseudo.round + 1}: embedding")
            val_scores = self._measure_val(trainer, pl_module, datamodule) if self.measure_val else {}
        finally:
            pl_module.train(was_training)
        cluster_ids = cluster_embeddings(embeddings, pl_module.metric, k1=self.k1, k2=self.k2, eps=self.eps,
                                         min_samples=self.min_samples)
        if trainer.world_size > 1:
            cluster_ids = trainer.strategy.broadcast(cluster_ids, src=0)
        num_clusters = int(cluster_ids.max(initial=-1)) + 1
        if num_clusters == 0:
            warnings.warn(f"pseudo-labels round {pseudo.round + 1}: DBSCAN found no cluster among {len(cluster_ids)} unlabelled "
                          f"images (eps={self.eps}, min_samples={self.min_samples}); training continues on the labelled data",
                          RuntimeWarning, stacklevel=2)
        targets = None
        if pl_module.hparams.pseudo_attribute_weight > 0 and num_clusters:
            targets = {name: cluster_attribute_targets(p, cluster_ids, num_clusters, self.vote_confidence)
                       for name, p in probabilities.items()}
        datamodule.set_pseudo_labels(cluster_ids, targets)
        kept = pseudo.cluster_ids
        centroids = cluster_means(embeddings, kept, pseudo.num_clusters)
        pl_module.start_pseudo_identities(centroids, trainer.optimizers)
        scores = {"round": pseudo.round, "clusters": pseudo.num_clusters, "outliers": int((kept < 0).sum()),
                  "clustered_images": int((kept >= 0).sum()), "round_min": (time.perf_counter() - started) / 60}
        scores.update({f"val_{k}": v for k, v in val_scores.items()})
        log.info("pseudo-labels round %d (after epoch %d): %s", pseudo.round, trainer.current_epoch,
                 ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items()))
        return scores

    def _measure_val(self, trainer: pl.Trainer, pl_module, datamodule) -> dict[str, float]:
        """The same procedure on the validation images (identities known): how good the clusters are."""
        records = datamodule.val_records
        embeddings, _ = self._embed_shared(trainer, pl_module, datamodule.val_set,
                                           "pseudo-labels: clustering the validation split")
        min_samples = min(self.min_samples, len(records))
        cluster_ids = cluster_embeddings(embeddings, pl_module.metric, k1=self.k1, k2=self.k2, eps=self.eps,
                                         min_samples=min_samples)
        return pairwise_scores([r.pid for r in records], cluster_ids)


def shard_indices(num_images: int, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s share of ``num_images``: every ``world_size``-th image, padded with its first one so that all
    ranks hold the same count (``all_gather`` needs equal shapes; ``gather_unique`` drops the repeat)."""
    indices = torch.arange(rank, num_images, world_size) if rank < num_images else torch.zeros(1, dtype=torch.long)
    share = -(-num_images // world_size)
    return torch.cat([indices, indices[:1].repeat(share - len(indices))])


def _time_for_another_epoch(trainer: pl.Trainer) -> bool:
    """False when ``trainer.max_time`` will stop training before one more epoch of average length ends."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    remaining = timer.time_remaining() if timer is not None else None
    if remaining is None:
        return True
    seconds_per_epoch = timer.time_elapsed() / (trainer.current_epoch + 1)
    return remaining >= seconds_per_epoch


def cluster_attribute_targets(probabilities: torch.Tensor, cluster_ids: np.ndarray, num_clusters: int,
                              vote_confidence: float | None) -> torch.Tensor:
    """(clusters, classes) attribute targets of one head: each cluster's mean predicted probabilities; with
    ``vote_confidence``, its majority class (one-hot) where at least that share of its images predict it, else
    none (a row of zeros: no loss)."""
    if vote_confidence is None:
        return cluster_means(probabilities, cluster_ids, num_clusters)
    classes = probabilities.shape[1]
    votes = cluster_means(torch.nn.functional.one_hot(probabilities.argmax(1), classes).float(), cluster_ids, num_clusters)
    share, winner = votes.max(1)
    return torch.nn.functional.one_hot(winner, classes).float() * (share >= vote_confidence - 1e-6).unsqueeze(1)
