"""LightningDataModule: a source's labelled records, split by identity, as train/val loaders."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from src.data.datasets import ImageDataset, preload
from src.data.images import drop_unreadable
from src.data.pseudo import PseudoLabels, read_unlabelled
from src.data.records import DataError, ImageRecord
from src.data.samplers import RandomImages
from src.data.splits import query_gallery_split, split_by_identity, split_contract
from src.data.transforms import build_transform
from src.errors import ConfigError


class MarketDataModule(pl.LightningDataModule):
    """Train/val loaders over identity-disjoint splits; the val split also defines query/gallery for re-ID.

    ``source(root)`` builds the layout reader (CourseSource, StandardSource, SyntheticSource): an
    object with ``labelled()``, ``gallery()`` and ``queries()`` returning records. ``sampler`` draws the training
    batches (``src/data/samplers.py``, by ``_target_``); progressive resolution is a callback that sets ``resizing``.
    """

    def __init__(self, root: str, source, height: int = 128, width: int = 64, val_ratio: float = 0.2, split_seed: int = 0,
                 batch_size: int = 64, eval_batch_size: int = 256, num_workers: int = 2, augment: dict | None = None,
                 preload: bool = True, skip_corrupt: bool = False, sampler: RandomImages | None = None, seed: int = 0,
                 unlabelled: list[str] | None = None, max_pseudo_identities: int = 2000):
        super().__init__()
        self.root = root
        self.source_factory = source
        self._source = None
        self.height, self.width = height, width
        self.val_ratio, self.split_seed = val_ratio, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.augment = dict(augment or {})
        self.preload = preload
        self.skip_corrupt = skip_corrupt
        self.sampler = sampler or RandomImages()
        self.seed = seed
        self.unlabelled_folders = list(unlabelled or [])
        self.max_pseudo_identities = max_pseudo_identities
        self.resizing = None  # callbacks.progressive_resizing: .size() before each training loader, .sizes to resume at
        self.pseudo: PseudoLabels | None = None  # unlabelled images and their current cluster ids
        self.pid_to_label: dict[int, int] = {}
        self.train_records: list[ImageRecord] = []
        self.val_records: list[ImageRecord] = []
        self.val_set: ImageDataset | None = None

    @property
    def source(self):
        """The layout reader, built on first use so a bad root fails when data is needed, naming it."""
        if self._source is None:
            self._source = self.source_factory(self.root)
        return self._source

    def split(self) -> list[ImageRecord]:
        """Read the labelled records and split them by identity (once), and check the options that depend on the
        data: ``train()`` calls it before it claims the run folder, so a batch or ratio that does not fit fails first.
        Returns the labelled records."""
        if not self.train_records:
            records = self.source.labelled()
            if self.skip_corrupt:
                records = drop_unreadable(records)
            self._labelled = records
            self.train_records, self.val_records = split_by_identity(records, self.val_ratio, self.split_seed)
            self.train_pids = sorted({r.pid for r in self.train_records})
        if not self.val_records:
            raise ConfigError(f"data.val_ratio={self.val_ratio}: leaves no validation identity in {self.root}; training "
                              "monitors held-out identities (use e.g. data.val_ratio=0.2)")
        self.sampler.check(self.batch_size, len(self.train_pids), self.root)
        return self._labelled

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is not None:
            return
        records = self.split()
        query_index, _ = query_gallery_split(self.val_records, self.split_seed)
        self.val_is_query = torch.zeros(len(self.val_records), dtype=torch.bool)
        self.val_is_query[query_index] = True
        self.train_cache = self._cache(self.train_records, "train")
        if self.unlabelled_folders:
            unlabelled = read_unlabelled(self.source.root, self.unlabelled_folders, labelled=records)
            self.pseudo = PseudoLabels(unlabelled, self._cache(unlabelled, "unlabelled"), self.max_pseudo_identities,
                                       first_label=len(self.train_pids))
        self._build_train_set()
        self.val_set = ImageDataset(self.val_records, self.height, self.width, None, self._cache(self.val_records, "val"))

    def resize(self, height: int, width: int) -> None:
        """Train and validate at another input size from now on (progressive resolution): images decoded anew."""
        if (height, width) == (self.height, self.width):
            return
        self.height, self.width = height, width
        if self.train_records:
            self.train_cache = self._cache(self.train_records, f"train at {height}x{width}")
            self._build_train_set()
            self.val_set = ImageDataset(self.val_records, height, width, None, self._cache(self.val_records, f"val at {height}x{width}"))

    def _cache(self, records: list[ImageRecord], name: str) -> torch.Tensor | None:
        if not self.preload or (name.startswith("train") and self._few_train_batches()):
            return None
        return preload(records, self.height, self.width, self.num_workers, f"decoding {name}")

    def _few_train_batches(self) -> bool:
        """``trainer.limit_train_batches`` set to a count or a fraction: decode the training images when a batch
        needs them instead of all of them first (a quick try on the course data would decode 8,000 images)."""
        limit = getattr(self.trainer, "limit_train_batches", None) if self.trainer is not None else None
        return limit is not None and (isinstance(limit, int) or limit < 1.0)

    def _build_train_set(self) -> None:
        """The labelled training images, plus the unlabelled ones that the current pseudo-labels put in a cluster."""
        records, cache = self.train_records, self.train_cache
        if self.pseudo is not None and self.pseudo.num_clusters:
            records = records + self.pseudo.records()
            cache = None if cache is None else torch.cat([cache, self.pseudo.cache_of_clustered()])
        # training identity -> classifier row: labelled identities, then the current pseudo identities; updated in
        # place, so the module's reference follows the rounds
        self.pid_to_label.clear()
        self.pid_to_label.update({pid: i for i, pid in enumerate(self.train_pids)})
        if self.pseudo is not None:
            self.pid_to_label.update(self.pseudo.pid_to_label())
        transform = build_transform(self.height, self.width, **self.augment)
        self.train_set = ImageDataset(records, self.height, self.width, transform, cache, seed=self.seed)

    def set_pseudo_labels(self, cluster_ids, attribute_targets: dict | None = None) -> None:
        """A new clustering round: cluster id per unlabelled image (-1: outlier, left out of training)."""
        self.pseudo.assign(cluster_ids, attribute_targets)
        self._build_train_set()

    @property
    def num_classes(self) -> int:
        """Rows of the identity classifier: the labelled identities plus room for the pseudo identities."""
        return len(self.train_pids) + (self.max_pseudo_identities if self.pseudo is not None else 0)

    SPLITS = ("all", "train", "val")

    def eval_records(self, split: str) -> list[ImageRecord]:
        """Labelled records of a split, for evaluation: ``all`` identities, or the ``train``/``val`` side of the
        seeded identity split (``val_ratio``, ``split_seed``)."""
        if split not in self.SPLITS:
            raise ConfigError(f"split={split!r} is not one of {', '.join(self.SPLITS)}")
        records = self.source.labelled()
        if split == "all":
            return records
        train_records, val_records = split_by_identity(records, self.val_ratio, self.split_seed)
        return val_records if split == "val" else train_records

    def state_dict(self) -> dict:
        """The data half of a checkpoint's contract: the input size and the identity split it was validated on."""
        if not self.train_records:
            return {}
        state = {"height": self.height, "width": self.width, "split": split_contract(self.val_records, self.val_ratio, self.split_seed)}
        if self.pseudo is not None:
            state["pseudo_labels"] = self.pseudo.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Resuming: the run must continue on the split and input size it started with."""
        if not state:
            return
        if self.resizing is not None and (state.get("height"), state.get("width")) in self.resizing.sizes:
            self.resize(state["height"], state["width"])  # resumed after a progressive-resolution switch
        mine = self.state_dict()
        for key in ("height", "width"):
            if state.get(key) != getattr(self, key):
                raise DataError(f"data.{key}={getattr(self, key)}: the checkpoint being resumed was trained with "
                                f"{state.get(key)}; resume with data.{key}={state.get(key)}")
        if mine and state.get("split") and mine["split"]["val_ids_sha256"] != state["split"]["val_ids_sha256"]:
            raise DataError(f"data.split_seed={self.split_seed} data.val_ratio={self.val_ratio} at {self.root} gives "
                            f"another validation split than the checkpoint being resumed ({state['split']})")
        if self.pseudo is not None and state.get("pseudo_labels"):
            self.pseudo.load_state_dict(state["pseudo_labels"])
            self._build_train_set()
        elif self.pseudo is None and state.get("pseudo_labels"):
            raise DataError("the checkpoint being resumed was trained with data.unlabelled="
                            f"{state['pseudo_labels']['folders']}; resume with the same data.unlabelled")

    @property
    def num_train_ids(self) -> int:
        return len(self.train_pids)

    def _loader(self, dataset, batch_size, **kwargs) -> DataLoader:
        # its own generator: starting workers draws their base seed from it, not from the global stream (which
        # dropout uses), so a resumed run that starts its persistent workers an epoch later draws the same masks
        return DataLoader(dataset, batch_size=batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed), **kwargs)

    def train_dataloader(self) -> DataLoader:
        if self.resizing is not None:
            self.resize(*self.resizing.size())
        ranks = {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank} if self.trainer is not None else {}
        batches = self.sampler.batches(self.train_set, self.batch_size, self.seed, **ranks)
        # Lightning starts the first epoch's workers (which fetch their first batches at once) before its first
        # set_epoch; on a resumed run that epoch is not 0: start the sampler at the epoch Lightning will set
        # (measured: without this the resumed epoch repeated epoch 0's order with 2 workers)
        if self.trainer is not None and batches.get("sampler") is not None:
            batches["sampler"].set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return self._loader(batch_size=self.batch_size, **batches)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size)
