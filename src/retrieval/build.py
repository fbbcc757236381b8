"""Create or update a gallery index: plan (file hashes against the existing index), embed only what is new with
one or many processes (``sharded``), and write the result as a new generation of the index folder (``store``).

An unchanged gallery (same names and file hashes, same checkpoint, kind and parameters) recomputes and rewrites
nothing. Added or changed images are embedded, removed ones dropped; everything else is kept (embeddings are
looked up by file hash, so a renamed file is not embedded again). An image keeps its faiss id while its name and
hash stay the same; the faiss index is updated in place (new vectors added, removed ones deleted) unless its
structure changes (kind, ``nlist``/``m``/``nbits``, hnsw ``m``, an automatic parameter that follows the gallery
size, or more than 10% of an hnsw graph removed): then it is rebuilt from the stored embeddings.
"""

from __future__ import annotations

import errno
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch
from tqdm import tqdm

from src.data.attributes import HEADS
from src.data.records import DataError, file_digest, list_images
from src.models.loading import CheckpointError, load_contract, load_network
from src.models.outputs import Outputs, network_step
from src.retrieval import kinds
from src.retrieval.sharded import Plan, collect_shards, is_first_process, run_predict, started_together, write_plan
from src.retrieval.store import (
    MANIFEST,
    SHARDS,
    GalleryIndex,
    GalleryIndexError,
    IndexLock,
    UnreadableImagesWarning,
    begin_generation,
    commit,
    generation_files,
    iter_rows,
    load_index,
    new_generation,
    now,
    npy_shape,
    read_rows,
    records_frame,
    remove_pending,
    write_embeddings,
    write_faiss,
    write_records,
)

MAX_TOMBSTONES = 0.10  # hnsw: rebuild once this share of its graph belongs to removed images


@dataclass
class BuildReport:
    path: Path
    total: int  # images in the index
    embedded: int  # images run through the network this time
    reused: int
    removed: int
    unreadable: list[str]
    written: bool  # False: the index was already up to date and nothing was touched
    kind: str = "flat"
    faiss: str = ""  # what happened to the faiss index: built, updated, kept
    processes: int = 1

    def summary(self) -> str:
        if not self.written:
            return f"{self.path}: up to date ({self.total} images, nothing recomputed)"
        unreadable = f", {len(self.unreadable)} unreadable skipped" if self.unreadable else ""
        processes = f", {self.processes} processes" if self.processes > 1 else ""
        return (f"{self.path}: {self.total} images ({self.embedded} embedded, {self.reused} reused, {self.removed} "
                f"removed{unreadable}); {self.kind} index {self.faiss}{processes}")


@dataclass
class Changes:
    """The gallery now against the index: which images to embed, which are known to be unreadable."""

    names: list[str]
    hashes: list[str]
    todo: list[int]  # positions in names to embed
    still_bad: dict[str, list[str]]  # name -> [sha256, error]: unreadable before, same bytes now
    old: GalleryIndex | None = None
    row_of_hash: dict[str, int] = field(default_factory=dict)


def gallery_names(gallery: Path, subfolders: bool = True) -> list[str]:
    """The gallery's image files (``list_images``) as relative POSIX names, the index's record names."""
    return [p.relative_to(gallery).as_posix() for p in list_images(gallery, subfolders=subfolders)]


def plan_changes(gallery: Path, old: GalleryIndex | None, subfolders: bool = True) -> Changes:
    names = gallery_names(gallery, subfolders)
    hashes = [file_digest(gallery / n) for n in tqdm(names, desc="hashing gallery", unit="img", leave=False)]
    row_of_hash = {} if old is None else {h: i for i, h in enumerate(old.sha256)}
    known_bad = {} if old is None else old.unreadable
    todo, still_bad = [], {}
    for i, (name, sha) in enumerate(zip(names, hashes)):
        if sha in row_of_hash:
            continue
        if known_bad.get(name, [None])[0] == sha:
            still_bad[name] = known_bad[name]
        else:
            todo.append(i)
    return Changes(names, hashes, todo, still_bad, old, row_of_hash)


def check_compatible(old: GalleryIndex, path: Path, ckpt_path, ckpt_sha: str, height: int, width: int,
                     kind: str | None, reindex: bool) -> None:
    if old.checkpoint_sha256 != ckpt_sha:
        raise GalleryIndexError(
            f"{path} was built with checkpoint {old.checkpoint} (sha256 {old.checkpoint_sha256[:12]}), not with "
            f"{ckpt_path} (sha256 {ckpt_sha[:12]}); use another output=FOLDER for this checkpoint, or rebuild=true "
            "to replace the index")
    if (old.height, old.width) != (height, width):
        raise GalleryIndexError(
            f"{path} was built at input size {old.height}x{old.width}, asked for {height}x{width}; pass "
            f"data.height={old.height} data.width={old.width}, another output=FOLDER, or rebuild=true")
    if kind is not None and kind != old.kind and not reindex:
        raise GalleryIndexError(
            f"{path} is a {old.kind} index, asked for index.kind={kind}; pass index.kind={old.kind} to update it, "
            f"reindex=true to rebuild it as {kind} from its stored embeddings (no image is embedded again), or "
            "another output=FOLDER")


def resolve_faiss(old: GalleryIndex | None, kind: str, requested: Mapping | None, num: int, dim: int,
                  reindex: bool) -> tuple[dict, list[str]]:
    """The parameters of the new index and the names pinned by the user (kept across updates)."""
    requested = {k: v for k, v in (requested or {}).items() if v is not None}
    same_kind = old is not None and old.kind == kind and not reindex
    pinned = sorted(set(requested) | (set(old.meta.get("pinned", [])) if same_kind else set()))
    kept = {k: old.params[k] for k in pinned if same_kind and k in old.params and k not in requested}
    return kinds.of(kind).resolve({**kept, **requested}, num, dim), pinned


def embedding_dim(ckpt_path: Path, height: int, width: int) -> int:
    """The embedding dimension of a re-ID checkpoint's network (one blank image through the batch step)."""
    net, _ = load_network(ckpt_path, "reid", "a gallery index")
    with torch.no_grad():
        return int(network_step(net, torch.zeros(1, 3, height, width), embeds=True)["embedding"].shape[1])


def _warn_unreadable(errors: dict[str, str]) -> None:
    shown = "; ".join(error for _, error in sorted(errors.items())[:20])  # each DataError names its file
    more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
    warnings.warn(f"skipped {len(errors)} unreadable images: {shown}{more}", UnreadableImagesWarning, stacklevel=3)


def build_index(ckpt_path: str | Path, gallery: str | Path, output: str | Path, *, height: int | None = None,
                width: int | None = None, kind: str | None = None, params: Mapping[str, Mapping] | None = None,
                batch_size: int = 64, num_workers: int = 0, rebuild: bool = False, reindex: bool = False,
                accelerator: str = "auto", devices: int = 1, num_nodes: int = 1,
                subfolders: bool = True) -> BuildReport | None:
    """Create or update the index of ``gallery`` in the folder ``output`` (see the module docstring).

    The images are embedded at the input size the checkpoint was trained at (its contract); another
    ``height``/``width`` given explicitly is used with one ``InputSizeWarning`` and recorded in the manifest
    (``input_size`` beside the ``contract``'s trained size).

    ``kind``: None keeps the existing index's kind (flat for a new index); ``params``: per kind, e.g.
    ``{"ivf_pq": {"nlist": 1024}}`` (unset or None: chosen from the gallery size). With ``devices`` x ``num_nodes`` > 1
    the images are embedded by that many processes (Lightning DDP); every
    process calls this function (Lightning starts them, or torchrun does) and only the first returns a report.
    """
    output = Path(output)
    work = output / SHARDS
    if not is_first_process():
        run_predict(work, accelerator=accelerator, devices=devices, num_nodes=num_nodes)
        return None
    gallery, ckpt_path = Path(os.path.abspath(gallery)), Path(ckpt_path)
    if not ckpt_path.is_file():
        raise CheckpointError(f"{ckpt_path}: checkpoint not found")
    if kind is not None:
        kinds.of(kind)
    contract = load_contract(ckpt_path, "reid", "a gallery index")  # a clear error before any process starts
    height, width = contract.input_size(height, width)
    with IndexLock(output):
        old = load_index(output) if (output / MANIFEST).exists() and not rebuild else None
        ckpt_sha = file_digest(ckpt_path)
        if old is not None:
            check_compatible(old, output, ckpt_path, ckpt_sha, height, width, kind, reindex)
        changes = plan_changes(gallery, old, subfolders)
        metric = old.metric if old is not None else contract.metric
        final_kind = kind or (old.kind if old else "flat")
        if changes.todo:  # index parameters the gallery cannot satisfy: an error before any image is embedded
            dim = old.dim if old is not None else embedding_dim(ckpt_path, height, width)
            resolve_faiss(old, final_kind, (params or {}).get(final_kind), len(changes.names), dim, reindex)
        fresh, world = Outputs({}, [], {}), 1
        if changes.todo or started_together(num_nodes):
            plan = Plan(new_generation(), str(gallery), os.path.abspath(ckpt_path), ckpt_sha, height, width,
                        batch_size, num_workers, [changes.names[i] for i in changes.todo])
            try:
                write_plan(work, plan)
                world, _ = run_predict(work, accelerator=accelerator, devices=devices, num_nodes=num_nodes)
                if plan.names:
                    fresh = collect_shards(work, plan, world)
            finally:  # whatever happens (nothing readable, a failed process): no shards/ left behind
                shutil.rmtree(work, ignore_errors=True)
        report = merge(output, changes, fresh, checkpoint=os.path.abspath(ckpt_path), ckpt_sha=ckpt_sha,
                       height=height, width=width, metric=metric, kind=final_kind,
                       params=params, reindex=reindex, gallery=gallery, trained_size=[contract.height, contract.width])
        report.processes = world
        return report


def merge(output: Path, changes: Changes, fresh: Outputs, *, checkpoint: str, ckpt_sha: str, height: int,
          width: int, metric: str | None, kind: str, params: Mapping | None, reindex: bool, gallery: Path,
          trained_size: list | None = None) -> BuildReport:
    """The new index from the old one and the freshly embedded images (positions in ``changes.todo`` order)."""
    old, names, hashes = changes.old, changes.names, changes.hashes
    errors = {names[changes.todo[i]]: e for i, e in fresh.errors.items()}
    hash_of = dict(zip(names, hashes))
    unreadable = {**changes.still_bad, **{n: [hash_of[n], e] for n, e in errors.items()}}
    if unreadable:
        _warn_unreadable({n: error for n, (_, error) in unreadable.items()})
    fresh_row = {changes.todo[i]: r for r, i in enumerate(fresh.ok)}
    kept = [i for i in range(len(names)) if i in fresh_row or hashes[i] in changes.row_of_hash]
    if not kept:
        raise DataError(f"{gallery}: none of the {len(names)} images could be read; nothing to index")
    embeddings = fresh.values["embedding"].numpy() if fresh.ok else None
    dim = embeddings.shape[1] if fresh.ok else old.dim

    # ids: an image keeps its id while its name and bytes stay; everything else gets a new one
    old_id = {} if old is None else {(n, h): int(i) for n, h, i in zip(old.names, old.sha256, old.ids)}
    next_id = 0 if old is None else int(old.meta["next_id"])
    ids = np.empty(len(kept), np.int64)
    for row, i in enumerate(kept):
        known = old_id.get((names[i], hashes[i]))
        if known is None:
            known, next_id = next_id, next_id + 1
        ids[row] = known
    removed_ids = np.array(sorted(set(old_id.values()) - set(ids.tolist())), np.int64)
    added = np.array([row for row, i in enumerate(kept) if (names[i], hashes[i]) not in old_id], np.int64)

    # each kept row comes from the fresh embeddings or from an old row with the same bytes
    source_old = np.array([-1 if i in fresh_row else changes.row_of_hash[hashes[i]] for i in kept], np.int64)
    source_fresh = np.array([fresh_row.get(i, -1) for i in kept], np.int64)
    probabilities, old_probabilities = {}, old.probabilities if old is not None else {}
    for head in HEADS:
        values = np.zeros((len(kept), head.num_classes), np.float32)
        if old is not None and (source_old >= 0).any():
            values[source_old >= 0] = old_probabilities[head.name][source_old[source_old >= 0]]
        if fresh.ok:
            values[source_fresh >= 0] = fresh.values[head.name].numpy()[source_fresh[source_fresh >= 0]]
        probabilities[head.name] = values

    resolved, pinned = resolve_faiss(old, kind, (params or {}).get(kind), len(kept), dim, reindex)
    removed = 0 if old is None else len(set(old.names) - set(names))
    content_same = (old is not None and not fresh.ok and not len(removed_ids) and not len(added)
                    and list(old.names) == [names[i] for i in kept] and list(old.ids) == ids.tolist())
    meta = {"checkpoint": checkpoint, "checkpoint_sha256": ckpt_sha, "height": height, "width": width,
            "metric": metric, "dim": dim, "kind": kind, "params": resolved, "pinned": pinned,
            "factory": kinds.of(kind).factory(resolved), "gallery": str(gallery), "count": len(kept),
            "next_id": next_id, "unreadable": unreadable, "trained_size": trained_size,
            "created": old.meta["created"] if old is not None else now(), "updated": now()}
    report = BuildReport(output, len(kept), len(fresh.ok), len(kept) - len(fresh.ok), removed, sorted(unreadable),
                         written=True, kind=kind)
    structure_same = (old is not None and old.kind == kind and not reindex
                      and kinds.structure(old.params) == kinds.structure(resolved))
    if content_same and structure_same:
        steady = {k: old.meta.get(k) for k in meta if k not in ("updated",)}
        if steady == {k: meta[k] for k in steady}:
            report.written, report.faiss = False, "kept"
            return report
        # only the description changed (checkpoint path, gallery folder, search parameters): same files
        commit(output, {**meta, "faiss_vectors": old.meta.get("faiss_vectors", len(old))}, old.meta["generation"])
        report.faiss = "kept"
        return report

    report.faiss = write_generation(
        output, meta, records_frame(ids, [names[i] for i in kept], [hashes[i] for i in kept], probabilities),
        _embedding_chunks(old, embeddings, source_old, source_fresh, dim), update=old if structure_same else None,
        added=added, removed_ids=removed_ids)
    return report


def write_generation(folder: Path, meta: dict, records, chunks: Iterable[np.ndarray], *,
                     update: GalleryIndex | None = None, added: np.ndarray | None = None,
                     removed_ids: np.ndarray | None = None) -> str:
    """Write records, embeddings and faiss index as a new generation and commit it; the faiss index is ``update``'s
    with ``removed_ids`` deleted and the ``added`` rows added when possible, else built afresh. Returns which.
    Pass ``records`` as a temporary: it is released before the faiss index is built (a million rows hold ~0.5 GB)."""
    generation = begin_generation(folder)
    files = generation_files(folder, generation)
    try:
        write_records(files["records"], records)
        ids = records["id"].to_numpy(np.int64).copy()
        del records
        write_embeddings(files["embeddings"], chunks, len(ids), meta["dim"])
        index, how = None, "updated"
        if update is not None:
            index = _updated_faiss(update, meta["kind"], files["embeddings"], ids, added, removed_ids, meta["metric"])
        if index is None:
            index, how = build_faiss(meta["kind"], meta["params"], files["embeddings"], ids, meta["metric"]), "built"
        write_faiss(files["faiss"], index)
    except BaseException as err:  # a full disk, an interrupt: this generation's own files go, the old index stays
        remove_pending(folder)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise GalleryIndexError(f"{folder}: {err.strerror} while writing a new index generation; its files were "
                                    "removed and the previous index is unchanged (free space or choose another "
                                    "output=)") from err
        raise
    commit(folder, {**meta, "faiss_vectors": int(index.ntotal)}, generation)
    return how


def index_from_embeddings(folder: str | Path, embeddings, names: Sequence[str], probabilities: Mapping[str, np.ndarray],
                          *, kind: str = "flat", params: Mapping | None = None, metric: str = "euclidean",
                          sha256: Sequence[str] | None = None, checkpoint: str = "", checkpoint_sha256: str = "",
                          height: int = 0, width: int = 0, gallery: str = "") -> GalleryIndex:
    """A new index from embeddings already computed (an (N, D) array, or a float32 .npy read in chunks): for
    benchmarks, tests and embeddings made elsewhere. Rows get ids 0..N-1."""
    folder = Path(folder)
    if isinstance(embeddings, (str, Path)):
        (num, dim), _ = npy_shape(Path(embeddings))
        chunks = (rows for _, rows in iter_rows(Path(embeddings)))
    else:
        embeddings = np.asarray(embeddings, np.float32)
        (num, dim), chunks = embeddings.shape, [embeddings]
    resolved = kinds.of(kind).resolve(params, num, dim)
    meta = {"checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256, "height": height, "width": width,
            "metric": metric, "dim": dim, "kind": kind, "params": resolved, "pinned": sorted(k for k, v in
            (params or {}).items() if v is not None), "factory": kinds.of(kind).factory(resolved),
            "gallery": gallery, "count": num, "next_id": num, "unreadable": {}, "created": now(), "updated": now()}
    with IndexLock(folder):
        write_generation(folder, meta, records_frame(
            np.arange(num), names, sha256 if sha256 is not None else (f"{i:064x}" for i in range(num)), probabilities),
            chunks)
    return load_index(folder)


def _embedding_chunks(old: GalleryIndex | None, fresh: np.ndarray | None, source_old: np.ndarray, source_fresh: np.ndarray,
                      dim: int, chunk: int = 65_536) -> Iterator[np.ndarray]:
    for start in range(0, len(source_old), chunk):
        out = np.empty((min(chunk, len(source_old) - start), dim), np.float32)
        from_old, from_fresh = source_old[start:start + chunk], source_fresh[start:start + chunk]
        if (from_old >= 0).any():
            out[from_old >= 0] = old.rows(from_old[from_old >= 0])
        if (from_fresh >= 0).any():
            out[from_fresh >= 0] = fresh[from_fresh[from_fresh >= 0]]
        yield out


def build_faiss(kind: str, params: Mapping, embeddings_path: Path, ids: np.ndarray, metric: str,
                seed: int = 0) -> faiss.Index:
    """A faiss index over an embeddings .npy (read in chunks); ``ids[i]`` is row i's id."""
    (num, dim), _ = npy_shape(embeddings_path)
    index = kinds.of(kind).new_index(params, dim)
    if kinds.of(kind).trains:
        sample = np.sort(np.random.default_rng(seed).choice(num, min(num, int(params["train_size"])), replace=False))
        index.train(kinds.prepared(read_rows(embeddings_path, sample), metric))
    for start, rows in iter_rows(embeddings_path):
        index.add_with_ids(kinds.prepared(rows, metric), ids[start:start + len(rows)])
    return index


def _updated_faiss(old: GalleryIndex, kind: str, embeddings_path: Path, ids: np.ndarray, added: np.ndarray,
                   removed_ids: np.ndarray, metric: str) -> faiss.Index | None:
    """The old faiss index with removed ids deleted and new rows added; None when a rebuild is due."""
    index = old.faiss
    if len(removed_ids):
        if kinds.of(kind).removes:
            index.remove_ids(faiss.IDSelectorBatch(removed_ids))
        elif index.ntotal - (len(ids) - len(added)) > MAX_TOMBSTONES * index.ntotal:
            return None
    if len(added):
        index.add_with_ids(kinds.prepared(read_rows(embeddings_path, added), metric), ids[added])
    return index
