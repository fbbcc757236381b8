"""LightningModule of the strong model: ID cross-entropy (label smoothing) + batch-hard triplet + optional center
loss + the 12 attribute heads as an auxiliary loss; validated with the same retrieval code as the report's model."""

from __future__ import annotations

import warnings

import torch
from hydra.utils import instantiate
from torch import nn

from src.data.attributes import HEAD_BY_NAME, HEAD_NAMES
from src.data.pseudo import PSEUDO_PID_BASE
from src.errors import ConfigError
from src.losses.center import CenterLoss
from src.losses.class_balanced import class_balanced_weights
from src.losses.cluster_memory import ClusterMemory
from src.losses.focal import focal_cross_entropy
from src.losses.triplet import BatchHardTripletLoss
from src.models.attribute_module import plain
from src.models.gather import gather_batch
from src.models.reid_module import RetrievalValidation

# model.triplet_feature -> the forward_train output the triplet loss sees: the pooled feature before the BN neck
# (Bag of Tricks) or the BN-neck feature the ID classifier and retrieval use
TRIPLET_FEATURES = {"pre_bn": "feature", "bnneck": "normed"}


class StrongReidModule(RetrievalValidation):
    def __init__(self, net: dict, optimizer: dict, scheduler: dict | None = None, label_smoothing: float = 0.1,
                 triplet_margin: float | None = 0.3, triplet_weight: float = 1.0, triplet_feature: str = "pre_bn",
                 triplet_across_ranks: bool = True, center_weight: float = 0.0, attribute_weight: float = 1.0,
                 pseudo_attribute_weight: float = 0.0, metric: str = "cosine", compile: bool = False,
                 init_weights: str | None = None, attribute_class_balance: float = 0.0,
                 balanced_heads: tuple[str, ...] = ("upcolor", "downcolor"), memory_weight: float = 0.0,
                 memory_temperature: float = 0.05, memory_momentum: float = 0.2, attribute_focal_gamma: float = 0.0):
        super().__init__()
        self.save_hyperparameters({
            "net": plain(net), "optimizer": plain(optimizer), "scheduler": plain(scheduler),
            "label_smoothing": label_smoothing, "triplet_margin": triplet_margin, "triplet_weight": triplet_weight,
            "triplet_feature": triplet_feature, "triplet_across_ranks": triplet_across_ranks,
            "center_weight": center_weight, "attribute_weight": attribute_weight,
            "pseudo_attribute_weight": pseudo_attribute_weight, "metric": metric, "init_weights": init_weights,
            "attribute_class_balance": attribute_class_balance, "balanced_heads": list(balanced_heads),
            "memory_weight": memory_weight, "memory_temperature": memory_temperature, "memory_momentum": memory_momentum,
            "attribute_focal_gamma": attribute_focal_gamma,
        })
        unknown = sorted(set(balanced_heads) - set(HEAD_NAMES))
        if unknown:
            raise ValueError(f"model.balanced_heads: {', '.join(unknown)} is not an attribute head ({', '.join(HEAD_NAMES)})")
        self.class_weights: dict[str, torch.Tensor] = {}  # head -> class weights (model.attribute_class_balance > 0)
        if triplet_feature not in TRIPLET_FEATURES:
            raise ValueError(f"model.triplet_feature={triplet_feature!r}: use one of {', '.join(TRIPLET_FEATURES)}")
        self.metric = metric
        self.net = instantiate(self.hparams.net) if self.hparams.net.get("num_identities") else None
        self.id_loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.triplet = BatchHardTripletLoss(triplet_margin)
        self.center: CenterLoss | None = None
        self.memory: ClusterMemory | None = None  # model.memory_weight > 0: centroids of the pseudo identities
        self.pseudo = None  # the datamodule's PseudoLabels when training with data.unlabelled
        self.compile = compile  # set to False after a failed compilation: the run continues in eager mode
        self._compiled = None  # torch.compile(net.forward_train), built at the first training step

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule  # Lightning set it up before this hook
        self.pid_to_label = datamodule.pid_to_label  # updated in place by pseudo-label rounds
        self.pseudo = datamodule.pseudo
        if self.net is None:
            self.hparams.net["num_identities"] = datamodule.num_classes
            self.net = instantiate(self.hparams.net)
            if self.hparams.get("init_weights"):  # a resumed run's checkpoint replaces these weights afterwards
                start_from(self.net, self.hparams.init_weights)
        beta = self.hparams.get("attribute_class_balance", 0.0)
        if beta > 0:  # from the labelled training split's classes
            labels = torch.tensor([r.labels for r in datamodule.train_records])
            self.class_weights = {name: class_balanced_weights(labels[:, HEAD_NAMES.index(name)], HEAD_BY_NAME[name].num_classes, beta)
                                  for name in self.hparams.balanced_heads}
        if self.hparams.center_weight > 0 and self.center is None:
            self.center = CenterLoss(self.net.id_classifier.out_features, self.net.feature_dim)
        if self.hparams.get("memory_weight", 0.0) > 0 and self.memory is None:
            if self.pseudo is None:
                raise ConfigError(f"model.memory_weight={self.hparams.memory_weight}: the cluster memory holds pseudo "
                                  "identities; set data.unlabelled (e.g. [test,queries]) or model.memory_weight=0")
            self.memory = ClusterMemory(self.pseudo.capacity, self.net.id_classifier.in_features,
                                        self.hparams.memory_temperature, self.hparams.memory_momentum)
        # weights in the layout of the channels_last inputs, as their gradients come out: DDP's all-reduce buckets
        # then match the gradients (no "grad strides do not match" copy on every step)
        self.net.to(memory_format=torch.channels_last)

    def forward_train(self, images: torch.Tensor) -> dict:
        """The training forward pass, compiled when ``model.compile=true``; a compilation that fails (no C++
        compiler, an unsupported op, ...) falls back to eager with one warning instead of stopping the run."""
        if self.compile:
            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.net.forward_train)
                return self._compiled(images)
            except Exception as err:  # torch.compile raises its backend's errors at the first call
                reason = (str(err).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"model.compile=true: torch.compile failed ({type(err).__name__}: {reason}); "
                              "training continues in eager mode", RuntimeWarning, stacklevel=2)
                self.compile, self._compiled = False, None
        return self.net.forward_train(images)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.forward_train(batch["image"])
        targets = torch.tensor([self.pid_to_label[int(p)] for p in batch["pid"]], device=self.device)
        id_logits = out["id_logits"][:, : len(self.pid_to_label)]  # rows past the current pseudo identities are unused
        losses = {
            "id": self.id_loss(id_logits, targets),
            "triplet": self.hparams.triplet_weight * self.triplet(*self.triplet_batch(out, targets)),
            "attributes": self.hparams.attribute_weight * self.attribute_loss(
                out["attributes"], batch["labels"], self.class_weights,
                {name: self.hparams.attribute_focal_gamma for name in self.hparams.balanced_heads}),
        }
        soft = self.pseudo.soft_attribute_targets(batch["pid"]) if self.pseudo is not None else None
        if soft is not None and self.hparams.pseudo_attribute_weight > 0:
            # logged on every step, 0 for a batch without pseudo-labelled images: under DDP each rank must log the same
            # keys, since the epoch-end sync of logged values is a collective per key
            mask, probabilities = soft
            losses["pseudo_attributes"] = self.hparams.pseudo_attribute_weight * sum(
                -(probabilities[name].to(self.device) * out["attributes"][name][mask].log_softmax(1)).sum(1).mean() for name in HEAD_NAMES
            ) / len(HEAD_NAMES) if mask.any() else losses["id"].new_zeros(())
        if self.center is not None:
            losses["center"] = self.hparams.center_weight * self.center(out["feature"], targets)
        if self.memory is not None:  # logged on every step (0 without pseudo-labelled images), as above
            losses["memory"] = self.hparams.memory_weight * self.memory_step(out["normed"], batch["pid"].to(self.device))
        loss = sum(losses.values())
        size = len(targets)
        self.log_dict({f"train/loss_{k}": v for k, v in losses.items()}, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        accuracy = (id_logits.argmax(1) == targets).float().mean()
        self.log("train/id_acc", accuracy, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def triplet_batch(self, out: dict, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The triplet loss's features and identities: under DDP with ``model.triplet_across_ranks`` the global
        batch, so hardest positives and negatives are mined among all P x K images as in one process; else this
        rank's share."""
        features = out[TRIPLET_FEATURES[self.hparams.triplet_feature]]
        return gather_batch(features, targets) if self.hparams.get("triplet_across_ranks", False) else (features, targets)

    def memory_step(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """The cluster-memory loss of this rank's pseudo-labelled images; then every rank moves the centroids with the
        global batch's (all ranks hold the same memory)."""
        pseudo = pids >= PSEUDO_PID_BASE
        loss = self.memory(features[pseudo], pids[pseudo] - PSEUDO_PID_BASE)
        with torch.no_grad():
            features, pids = gather_batch(features.detach(), pids)
            pseudo = pids >= PSEUDO_PID_BASE
            self.memory.update(features[pseudo], pids[pseudo] - PSEUDO_PID_BASE)
        return loss

    @staticmethod
    def attribute_loss(logits: dict[str, torch.Tensor], labels: torch.Tensor, class_weights: dict | None = None,
                       focal_gammas: dict | None = None) -> torch.Tensor:
        """Mean over heads of the cross-entropy on the images that have attribute labels (-1: none, e.g. pseudo-labelled);
        a head in ``class_weights`` weighs its classes (the weighted mean of its images' losses), a head in
        ``focal_gammas`` takes the focal cross-entropy with that gamma."""
        labelled = labels[:, 0] >= 0
        if not labelled.any():
            return labels.new_zeros((), dtype=torch.float32)
        weights = {name: w.to(logits[name].device) for name, w in (class_weights or {}).items()}
        gammas = focal_gammas or {}
        losses = [focal_cross_entropy(logits[name][labelled], labels[labelled, i], gammas.get(name, 0.0), weights.get(name))
                  if gammas.get(name, 0.0) > 0 else
                  nn.functional.cross_entropy(logits[name][labelled], labels[labelled, i], weight=weights.get(name))
                  for i, name in enumerate(HEAD_NAMES)]
        return sum(losses) / len(HEAD_NAMES)

    @torch.no_grad()
    def start_pseudo_identities(self, centroids: torch.Tensor, optimizers=()) -> None:
        """A new clustering round: the classifier rows of the pseudo identities start at their clusters' mean
        BN-neck features (scaled like the labelled rows) and their optimizer moments restart from zero; so does the
        cluster memory."""
        if self.memory is not None:
            self.memory.restart(centroids)
        weight = self.net.id_classifier.weight
        first = len(self.pid_to_label) - len(centroids)
        scale = weight[:first].norm(dim=1).mean()
        weight[first:] = 0
        weight[first : first + len(centroids)] = nn.functional.normalize(centroids.to(weight), dim=1) * scale
        for optimizer in optimizers:
            state = optimizer.state.get(weight, {})
            for moment in state.values():
                if torch.is_tensor(moment) and moment.shape == weight.shape:
                    moment[first:] = 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        embedding, logits = self.net.embed_and_classify(batch["image"])
        self.collect_validation(embedding, logits, batch)

    def on_validation_epoch_end(self) -> None:
        self.log_validation(self.validation_metrics())


def start_from(net: nn.Module, path: str) -> None:
    """Copy the network weights of a re-ID checkpoint or released file into ``net`` (``model.init_weights``): every
    tensor whose name and shape match; the rest (e.g. an identity classifier over other identities) keeps its fresh
    initialisation, named in one warning. Optimizer state and schedule start anew."""
    from src.models.loading import CheckpointError, check_kind, read_checkpoint, read_contract

    checkpoint = read_checkpoint(path)
    check_kind(read_contract(checkpoint, path), "reid", "model.init_weights")
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    own = net.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < len(own) / 2:
        raise CheckpointError(f"{path}: model.init_weights: only {len(fitting)} of the {len(own)} weight tensors of "
                              "this network fit it (another network or backbone)")
    net.load_state_dict(fitting, strict=False)
    fresh = sorted(set(own) - set(fitting))
    if fresh:
        warnings.warn(f"model.init_weights={path}: {len(fresh)} tensors do not fit and start fresh "
                      f"({', '.join(fresh[:4])}{', ...' if len(fresh) > 4 else ''})", UserWarning, stacklevel=2)
