"""A gallery embedded by N processes (one machine or several): Lightning predict with DDP, each process writing
one shard that the first process merges.

The first process (global rank 0) writes ``plan.parquet`` (the images to embed, the checkpoint and its SHA-256,
the input size) into the index's ``shards/`` folder before the processes meet; every process reads it once the
process group is up (Lightning ``setup``), embeds its part of the images (the distributed sampler) and streams
its results into ``shard-<rank>-of-<world>.npy`` (embeddings), ``.probabilities.npy`` and ``.parquet`` (positions
in the plan and errors of unreadable images; written last, it marks the shard complete). With several machines,
``shards/`` must be on storage they all see.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, TQDMProgressBar
from torch.utils.data import DataLoader

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.records import ImageRecord, file_digest
from src.inference import loader_of
from src.io.atomic import atomic_path
from src.models.loading import load_network
from src.models.outputs import Outputs, batch_outputs, network_step
from src.retrieval.store import GalleryIndexError, write_embeddings

PLAN = "plan.parquet"
NUM_PROBABILITIES = sum(h.num_classes for h in HEADS)


@dataclass
class Plan:
    """What a build asks every process to embed; ``names`` are relative to ``gallery``, their order is the position."""

    build_id: str
    gallery: str
    checkpoint: str
    checkpoint_sha256: str
    height: int
    width: int
    batch_size: int = 64
    num_workers: int = 0
    names: list[str] = field(default_factory=list)


def is_first_process() -> bool:
    """Whether this is global rank 0, as the launcher tells it before any process group exists (True when alone).

    torchrun sets ``RANK``; Lightning's own launcher starts the other processes of a machine with ``LOCAL_RANK``
    and the machines with ``NODE_RANK``.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("NODE_RANK") or 0) == 0 and int(os.environ.get("LOCAL_RANK") or 0) == 0


def started_together(num_nodes: int) -> bool:
    """True when the other processes run whether or not this one starts a predict (torchrun, several machines)."""
    return int(os.environ.get("WORLD_SIZE", 1) or 1) > 1 or num_nodes > 1


def write_plan(work: Path, plan: Plan) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("shard-*"):
        stale.unlink()
    meta = {k: v for k, v in asdict(plan).items() if k != "names"}
    table = pa.table({"name": pa.array(plan.names, pa.string())}).replace_schema_metadata({"plan": json.dumps(meta)})
    with atomic_path(work / PLAN) as tmp:
        pq.write_table(table, tmp)
    return work / PLAN


def read_plan(work: Path) -> Plan:
    path = work / PLAN
    if not path.is_file():
        raise GalleryIndexError(f"{path}: no build plan; the first process writes it (is this the same output= on "
                                "storage every process sees?)")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"plan"])
    return Plan(**meta, names=table.column("name").to_pylist())


def shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}"


# ------------------------------------------------------------------------------------------------ Lightning
class PlanImages(pl.LightningDataModule):
    """The plan's images; read in ``setup``, i.e. after the first process has written the plan."""

    def __init__(self, work: Path):
        super().__init__()
        self.work = Path(work)
        self.plan: Plan | None = None

    def setup(self, stage: str) -> None:
        self.plan = read_plan(self.work)

    def predict_dataloader(self) -> DataLoader:
        records = [ImageRecord(Path(self.plan.gallery) / name, -1, -1) for name in self.plan.names]
        return loader_of(records, self.plan.height, self.plan.width, self.plan.batch_size, self.plan.num_workers,
                         skip_unreadable=True)


class EmbedImages(pl.LightningModule):
    """The plan's re-ID network; it must be the very file (SHA-256) the first process planned with."""

    def __init__(self):
        super().__init__()
        self.net = None

    def setup(self, stage: str) -> None:
        plan = self.trainer.datamodule.plan
        sha = file_digest(plan.checkpoint) if Path(plan.checkpoint).is_file() else "missing"
        if sha != plan.checkpoint_sha256:
            raise GalleryIndexError(f"process {self.trainer.global_rank}: checkpoint {plan.checkpoint} is {sha[:12]} "
                                    f"here, the build planned with sha256 {plan.checkpoint_sha256[:12]}")
        self.net, _ = load_network(plan.checkpoint, "reid", "a gallery index")

    def predict_step(self, batch: dict, batch_idx: int) -> Outputs:
        """The batch loop's own batch (``batch_outputs`` of ``network_step``), on the process's device."""
        out = batch_outputs(lambda images: network_step(self.net, images, embeds=True), batch)
        return Outputs({k: v.cpu() for k, v in out.values.items()}, out.ok, out.errors)


class ShardWriter(BasePredictionWriter):
    """Streams each process's results to its shard files; the shard's .parquet is written last, then all wait."""

    def __init__(self, work: Path):
        super().__init__("batch")
        self.work = Path(work)
        self.positions: list[int] = []
        self.errors: list[str | None] = []
        self.parts = None

    def _part(self, trainer, suffix: str) -> Path:
        return self.work / f"{shard_name(trainer.global_rank, trainer.world_size)}.{suffix}.part"

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self.positions, self.errors, self.dim = [], [], 0
        self.parts = {key: open(self._part(trainer, key), "wb") for key in ("embedding", "probabilities")}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.positions.extend([*prediction.ok, *prediction.errors])
        self.errors.extend([None] * len(prediction.ok) + list(prediction.errors.values()))
        if prediction.ok:
            prediction = prediction.values
            self.dim = prediction["embedding"].shape[1]
            self.parts["embedding"].write(prediction["embedding"].numpy().astype("<f4").tobytes())
            probabilities = np.concatenate([prediction[h].numpy() for h in HEAD_NAMES], axis=1)
            self.parts["probabilities"].write(probabilities.astype("<f4").tobytes())

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        name = shard_name(trainer.global_rank, trainer.world_size)
        num_ok = sum(e is None for e in self.errors)
        for key, width, suffix in (("embedding", self.dim, "npy"), ("probabilities", NUM_PROBABILITIES, "probabilities.npy")):
            self.parts[key].close()
            part = self._part(trainer, key)
            raw = np.fromfile(part, dtype="<f4").reshape(num_ok, width) if num_ok else np.empty((0, width), np.float32)
            write_embeddings(self.work / f"{name}.{suffix}", [raw], num_ok, width)
            part.unlink()
        plan = trainer.datamodule.plan
        table = pa.table({"position": pa.array(self.positions, pa.int64()), "error": pa.array(self.errors, pa.string())})
        table = table.replace_schema_metadata({"shard": json.dumps({"build_id": plan.build_id, "dim": self.dim})})
        with atomic_path(self.work / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp)
        trainer.strategy.barrier("shards written")


class EmbeddingProgress(TQDMProgressBar):
    """The first process's predict bar on stderr, cleared when done (stdout keeps only the build's summary)."""

    def init_predict_tqdm(self):
        from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

        return Tqdm(disable=self.is_disabled, leave=False, dynamic_ncols=True, file=sys.stderr, unit="batch")


@contextlib.contextmanager
def torch_threads_kept():
    """Lightning's DDP launcher sets every process's torch threads to cores // processes on its machine unless
    ``OMP_NUM_THREADS`` is set: set to the threads this process uses (``torch_threads``), it leaves them alone."""
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def run_predict(work: Path, *, accelerator: str = "cpu", devices: int = 1, num_nodes: int = 1) -> tuple[int, bool]:
    """Embed the plan in ``work`` with ``devices`` x ``num_nodes`` processes; (world size, is this the first process)."""
    from src.runtime import quiet_library_noise

    quiet_library_noise()
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # accelerator banners
    world = int(devices) * int(num_nodes)
    strategy = "auto"
    if world > 1:
        from pytorch_lightning.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
    with warnings.catch_warnings(), torch_threads_kept() if world > 1 else contextlib.nullcontext():
        warnings.filterwarnings("ignore", message=r".*(does not have many workers|Total length of .* across ranks is zero).*")
        trainer = pl.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                             logger=False, enable_checkpointing=False, enable_model_summary=False,
                             default_root_dir=str(work), callbacks=[ShardWriter(work), EmbeddingProgress()])
        trainer.predict(EmbedImages(), datamodule=PlanImages(work), return_predictions=False)
    return trainer.world_size, trainer.is_global_zero


def collect_shards(work: Path, plan: Plan, world: int) -> Outputs:
    """Every process's shard, merged into plan order; a missing shard or image is an error naming it."""
    positions, errors, embeddings, probabilities = [], [], [], []
    for rank in range(world):
        name = shard_name(rank, world)
        table_path = work / f"{name}.parquet"
        if not table_path.is_file():
            raise GalleryIndexError(f"{table_path}: shard {rank} of {world} is missing (process {rank} did not finish, "
                                    "or wrote to storage this machine does not see); nothing was merged, run the build again")
        table = pq.read_table(table_path)
        meta = json.loads(table.schema.metadata[b"shard"])
        if meta["build_id"] != plan.build_id:
            raise GalleryIndexError(f"{table_path}: shard of another build ({meta['build_id']}, this one is "
                                    f"{plan.build_id}); run the build again")
        frame = table.to_pandas()
        positions.append(frame["position"].to_numpy())
        errors.append(frame["error"].to_numpy(dtype=object))
        embeddings.append(np.load(work / f"{name}.npy"))
        probabilities.append(np.load(work / f"{name}.probabilities.npy"))
    position = np.concatenate(positions) if positions else np.empty(0, np.int64)
    error = np.concatenate(errors) if errors else np.empty(0, object)
    # the distributed sampler pads the last ranks with repeats of the first images: keep one of each
    unique, first = np.unique(position, return_index=True)
    missing = sorted(set(range(len(plan.names))) - set(unique.tolist()))
    if missing:
        shown = ", ".join(plan.names[i] for i in missing[:5])
        raise GalleryIndexError(f"{work}: the shards lack {len(missing)} of the {len(plan.names)} planned images "
                                f"({shown}{', ...' if len(missing) > 5 else ''}); run the build again")
    ok_all = pd.isna(error)
    row_of = np.cumsum(ok_all) - 1  # row of an ok entry in the concatenated embedding arrays
    dims = {e.shape[1] for e in embeddings if len(e)}
    dim = dims.pop() if dims else 0
    stacked = np.concatenate([e.reshape(-1, dim) for e in embeddings]) if dim else np.empty((0, 0), np.float32)
    probs = np.concatenate(probabilities) if probabilities else np.empty((0, NUM_PROBABILITIES), np.float32)
    ok = [int(position[i]) for i in first if ok_all[i]]
    rows = np.array([row_of[i] for i in first if ok_all[i]], dtype=np.int64)
    split = np.cumsum([0] + [h.num_classes for h in HEADS])
    values = {h.name: torch.from_numpy(np.ascontiguousarray(probs[rows, split[i]:split[i + 1]])) for i, h in enumerate(HEADS)}
    if ok:
        values["embedding"] = torch.from_numpy(np.ascontiguousarray(stacked[rows]))
    return Outputs(values, ok, {int(position[i]): str(error[i]) for i in first if not ok_all[i]})
