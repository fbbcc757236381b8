"""The gallery index on disk: one folder, written atomically, read whole or not at all.

::

    <index>/manifest.json                 what the index is (below) and the three files of its generation
    <index>/records-<generation>.parquet  one row per image: id, name (relative to the gallery), sha256, camera,
                                          the 12 predicted attributes (readable class names) and p_<head>_<class>
    <index>/embeddings-<generation>.npy   (N, D) float32 network embeddings, rows in records order
    <index>/faiss-<generation>.index      the faiss index over the records' ids (kinds.py)
    <index>/build.lock                    held (flock) while a build writes; a second build is refused
    <index>/build.pending                 the generation a build is writing (removed at its commit)
    <index>/shards/                       plan and per-process shards of a running build

The manifest holds the format version, the checkpoint (path and SHA-256), the input size, the metric, the
embedding dimension, the faiss kind and its parameters, the gallery folder, the images that could not be read,
and for every file its size in bytes. A build writes a new generation's files (each to a temporary name,
fsynced, renamed), then replaces ``manifest.json`` the same way: that rename is the commit. A crash leaves the
old index or the new one. A build only ever removes files it made, by the names recorded for them: the previous
generation's (in the old manifest) after the commit, and a crashed build's (in ``build.pending``) before the next
one; never a file by pattern. A new index needs a folder of its own: a folder holding other files (a gallery, say)
is refused; files a user adds to an index folder later are left alone. A reader checks every
file's size against the manifest before loading anything, so a truncated file is an error, never a partial load.
hnsw cannot remove vectors: ids of removed images stay in its graph until a rebuild, and searches admit only
the ids in the records (``GalleryIndex.tombstones``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.records import parse_market_name
from src.errors import KnownError
from src.io.atomic import atomic_path, write_json
from src.io.locks import Locked, take_lock
from src.retrieval import kinds

if TYPE_CHECKING:  # faiss loads on the first search (GalleryIndex.faiss), not for reading a manifest
    import faiss

FORMAT = "market-par-reid gallery index"
VERSION = 2
MANIFEST = "manifest.json"
LOCK = "build.lock"
PENDING = "build.pending"
SHARDS = "shards"
FILES = ("records", "embeddings", "faiss")
CHUNK_ROWS = 65_536


class MissingGalleryFilesWarning(UserWarning):
    """Gallery images of the index are no longer where it was built (moved or deleted since indexing)."""


class GalleryIndexError(KnownError, ValueError):
    """A missing, truncated or unreadable index, or one that does not fit the request (checkpoint, input size, kind)."""


class UnreadableImagesWarning(UserWarning):
    """Images that could not be decoded and were left out (one warning per run, listing them)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_index_path(gallery: str | Path, root_dir: str | Path = ".") -> Path:
    """``outputs/index/<gallery folder name>-<8 hex of its absolute path>``: one index folder per gallery folder."""
    absolute = Path(os.path.abspath(gallery))  # as the user names it: symlinks are not resolved
    tag = hashlib.sha256(str(absolute).encode()).hexdigest()[:8]
    return Path(root_dir) / "outputs" / "index" / f"{absolute.name}-{tag}"


# ------------------------------------------------------------------------------------------------ lock
class IndexLock:
    """Exclusive right to write the index folder (``flock``: released by the OS if the process dies)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.handle = None

    def __enter__(self) -> IndexLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise GalleryIndexError(f"{self.folder}: a file, not an index folder; pass another output=")
        check_own_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.handle = take_lock(self.folder / LOCK, f"build by pid {os.getpid()} on {socket.gethostname()} since {now()}")
        except Locked as held:
            raise GalleryIndexError(f"{self.folder}: another build is writing this index ({held.holder or 'another process'}); "
                                    "wait for it to finish or use another output=") from None
        remove_pending(self.folder)  # what a crashed build left, by the names it recorded
        return self

    def __exit__(self, *exc) -> None:
        self.handle.truncate(0)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# ------------------------------------------------------------------------------------------------ records
def camera_of(name: str) -> int | None:
    """Camera number from a Market-1501 or course file name, else None."""
    parsed = parse_market_name(name)
    return None if parsed is None else parsed[1]


def probability_columns() -> list[str]:
    return [f"p_{head.name}_{cls}" for head in HEADS for cls in head.classes]


def records_frame(ids, names, sha256, probabilities: dict[str, np.ndarray]) -> pd.DataFrame:
    """The records table: id, name, sha256, camera, the predicted class of each head, p_<head>_<class>."""
    names = pd.array(list(names), dtype="string")
    frame = {"id": np.asarray(ids, dtype=np.int64), "name": names, "sha256": pd.array(list(sha256), dtype="string"),
             "camera": pd.array([camera_of(n) for n in names], dtype="Int16")}
    for head in HEADS:
        codes = np.asarray(probabilities[head.name]).argmax(1) if len(names) else np.empty(0, np.int64)
        frame[head.name] = pd.Categorical.from_codes(codes, categories=list(head.classes))
    for head in HEADS:
        values = np.asarray(probabilities[head.name], dtype=np.float32).reshape(len(names), head.num_classes)
        for c, cls in enumerate(head.classes):
            frame[f"p_{head.name}_{cls}"] = values[:, c]
    return pd.DataFrame(frame)


def write_records(path: Path, records: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        records.to_parquet(tmp, index=False, engine="pyarrow")
    return path


# ------------------------------------------------------------------------------------------------ embeddings
def write_embeddings(path: Path, chunks: Iterable[np.ndarray], num_rows: int, dim: int) -> Path:
    """An (num_rows, dim) float32 .npy written from row chunks, never held whole."""
    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (num_rows, dim)})
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype="<f4")
            chunk = chunk.reshape(-1, dim) if dim else chunk.reshape(len(chunk), 0)  # a shard with no readable image
            out.write(chunk.tobytes())
            written += len(chunk)
        out.flush()
        if written != num_rows:
            raise ValueError(f"{path}: {written} embedding rows written, {num_rows} expected")
    return path


def npy_shape(source: Path | BinaryIO) -> tuple[tuple[int, ...], int]:
    """(shape, header bytes) of a .npy file (a path or an open binary file), reading only its header."""
    with _opened(source) as handle:
        handle.seek(0)
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
        if fortran or dtype != np.dtype("<f4"):
            raise GalleryIndexError(f"{getattr(handle, 'name', source)}: expected C-ordered float32 embeddings, found {dtype}")
        return shape, handle.tell()


@contextlib.contextmanager
def _opened(source: Path | BinaryIO):
    """An open binary file for a path (closed afterwards), or the open file itself (left open)."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            yield handle
    else:
        yield source


def read_rows(source: Path | BinaryIO, rows: np.ndarray | slice) -> np.ndarray:
    """Rows of a float32 .npy (a path or an open binary file) by plain reads, one per run of consecutive rows:
    nothing is memory-mapped, so the process holds only the rows asked for (a mapping would pull neighbouring
    pages of the whole file into RSS)."""
    (num, dim), offset = npy_shape(source)
    path = getattr(source, "name", source)
    rows = np.arange(num)[rows] if isinstance(rows, slice) else np.asarray(rows, np.int64).reshape(-1)
    out = np.empty((len(rows), dim), np.float32)
    if not len(rows) or not dim:
        return out
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    if ordered[0] < 0 or ordered[-1] >= num:
        raise IndexError(f"{path}: rows {ordered[0]}..{ordered[-1]} asked, the file holds {num}")
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    buffer = np.empty_like(out)
    with _opened(source) as handle:
        for start, end in zip([0, *breaks.tolist()], [*breaks.tolist(), len(ordered)]):
            view = memoryview(buffer[start:end]).cast("B")
            if os.preadv(handle.fileno(), [view], offset + int(ordered[start]) * dim * 4) != len(view):
                raise GalleryIndexError(f"{path}: shorter than its header says; rebuild the index")
    out[order] = buffer
    return out


def iter_rows(path: Path, chunk: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(start, rows) chunks of a float32 .npy, read with plain reads."""
    (num, dim), offset = npy_shape(path)
    with open(path, "rb") as handle:
        handle.seek(offset)
        for start in range(0, num, chunk):
            count = min(chunk, num - start)
            yield start, np.fromfile(handle, dtype="<f4", count=count * dim).reshape(count, dim)


# ------------------------------------------------------------------------------------------------ the index
@dataclass
class GalleryIndex:
    """An index folder read into memory: manifest and records; the embeddings and faiss files are held open
    (read when needed, faiss on first use), so a build that replaces them meanwhile does not disturb a search."""

    folder: Path
    meta: dict
    records: pd.DataFrame
    handles: dict[str, BinaryIO] = field(repr=False)  # role -> the open file of this generation
    _faiss: faiss.Index | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    checkpoint = property(lambda self: self.meta["checkpoint"])
    checkpoint_sha256 = property(lambda self: self.meta["checkpoint_sha256"])
    height = property(lambda self: int(self.meta["height"]))
    width = property(lambda self: int(self.meta["width"]))
    metric = property(lambda self: self.meta["metric"])
    dim = property(lambda self: int(self.meta["dim"]))
    kind = property(lambda self: self.meta["kind"])
    params = property(lambda self: dict(self.meta["params"]))
    gallery = property(lambda self: self.meta["gallery"])
    unreadable = property(lambda self: dict(self.meta.get("unreadable") or {}))  # name -> [sha256, error]

    def file(self, role: str) -> Path:
        return self.folder / self.meta["files"][role]["name"]

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 embeddings, memory-mapped (convenient for small galleries; searches use :meth:`rows`)."""
        (num, dim), offset = npy_shape(self.handles["embeddings"])
        return np.memmap(self.handles["embeddings"], dtype="<f4", mode="r", offset=offset, shape=(num, dim))

    def rows(self, rows) -> np.ndarray:
        """Stored embeddings of these records rows."""
        return read_rows(self.handles["embeddings"], rows)

    def path(self, name: str) -> Path:
        """Where the gallery image ``name`` (a row's relative file name) lives."""
        return Path(self.meta["gallery"]) / name

    def missing_files(self, rows=None) -> list[str]:
        """Names of the gallery images (of ``rows``, default all) no longer where the index was built."""
        names = self.names if rows is None else [self.names[r] for r in rows]
        return [name for name in names if not self.path(name).is_file()]

    def reindex_command(self) -> str:
        """Re-points the index at the folder its images moved to (moved files are reused by their hash)."""
        return f"python -m src.index build ckpt_path={self.checkpoint} gallery=NEWDIR output={self.folder}"

    @property
    def names(self):
        """Relative file names, in rows order (an array backed by the records table: nothing is copied)."""
        return self.records["name"].array

    @property
    def sha256(self):
        return self.records["sha256"].array

    @cached_property
    def ids(self) -> np.ndarray:
        return self.records["id"].to_numpy(dtype=np.int64)

    @cached_property
    def attributes(self) -> np.ndarray:
        """(N, 12) predicted class index per head, HEAD_NAMES order."""
        if not len(self):
            return np.empty((0, len(HEADS)), np.int64)
        return np.stack([pd.Categorical(self.records[h.name], categories=list(h.classes)).codes for h in HEADS],
                        axis=1).astype(np.int64)

    @property
    def probabilities(self) -> dict[str, np.ndarray]:
        """Per head, the (N, classes) probabilities; read from the records file when asked (41 floats per image)."""
        self.handles["records"].seek(0)
        table = pd.read_parquet(self.handles["records"], engine="pyarrow", columns=probability_columns())
        return {h.name: table[[f"p_{h.name}_{c}" for c in h.classes]].to_numpy(np.float32) for h in HEADS}

    @cached_property
    def _id_order(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.ids, kind="stable")
        return order, self.ids[order]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Records rows of faiss ids (-1 stays -1)."""
        order, sorted_ids = self._id_order
        ids = np.asarray(ids, dtype=np.int64)
        if not len(sorted_ids):
            return np.full(ids.shape, -1, np.int64)
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        return np.where((ids >= 0) & (sorted_ids[at] == ids), order[at], -1)

    @property
    def faiss(self) -> faiss.Index:
        import faiss

        if self._faiss is None:
            path, handle = self.file("faiss"), self.handles["faiss"]
            try:
                handle.seek(0)
                self._faiss = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            except RuntimeError as err:
                raise GalleryIndexError(f"{path}: not a readable faiss index ({str(err).strip().splitlines()[-1]})") from err
            if self._faiss.d != self.dim or self._faiss.ntotal < len(self):
                raise GalleryIndexError(f"{path}: holds {self._faiss.ntotal} vectors of {self._faiss.d}-d, the "
                                        f"records {len(self)} of {self.dim}-d; rebuild it")
        return self._faiss

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Exact stored vectors of records rows as faiss compares them (unit length for cosine): from the faiss
        index where it keeps them (flat, hnsw), else read from the embeddings file."""
        import faiss

        rows = np.asarray(rows, np.int64)
        if kinds.of(self.kind).keeps_vectors:
            inner = faiss.downcast_index(faiss.downcast_index(self.faiss).index)
            return inner.reconstruct_batch(self._faiss_positions[rows])
        return kinds.prepared(self.rows(rows), self.metric)

    @cached_property
    def _faiss_positions(self) -> np.ndarray:
        """Position inside the faiss IDMap of every records row."""
        import faiss

        id_map = faiss.vector_to_array(faiss.downcast_index(self.faiss).id_map)
        order = np.argsort(id_map, kind="stable")
        return order[np.searchsorted(id_map[order], self.ids)]

    @property
    def tombstones(self) -> int:
        """Vectors in the faiss index whose image was removed (hnsw only)."""
        return int(self.meta.get("faiss_vectors", len(self))) - len(self)


def _check_header(meta, folder: Path) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GalleryIndexError(f"{folder}: not a gallery index of this project (no '{FORMAT}' manifest)")
    if meta.get("version") != VERSION:
        raise GalleryIndexError(f"{folder}: index format version {meta.get('version')}, this code reads version "
                                f"{VERSION}; rebuild it (python -m src.index build ... rebuild=true)")
    heads = {h.name: list(h.classes) for h in HEADS}
    if meta.get("heads") != heads:
        raise GalleryIndexError(f"{folder}: made with other attribute heads {list(meta.get('heads') or {})}; rebuild it")


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    if folder.is_file():
        hint = " (a .pt index of an earlier version of this project)" if folder.suffix == ".pt" else ""
        raise GalleryIndexError(f"{folder}: not an index folder{hint}; build one with python -m src.index build "
                                "ckpt_path=... gallery=... output=NEW_FOLDER")
    path = folder / MANIFEST
    if not path.is_file():
        raise GalleryIndexError(f"{folder}: index not found (no {MANIFEST}); make one with python -m src.index build "
                                "ckpt_path=... gallery=...")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise GalleryIndexError(f"{path}: truncated or not JSON ({err})") from err
    _check_header(meta, folder)
    return meta


def load_index(folder: str | Path) -> GalleryIndex:
    """Read an index folder; every file's size is checked against the manifest before anything is loaded."""
    folder = Path(folder)
    meta = read_manifest(folder)
    handles = {}
    try:
        for role in FILES:
            entry = meta["files"][role]
            path = folder / entry["name"]
            try:
                handles[role] = open(path, "rb")
            except FileNotFoundError:
                raise GalleryIndexError(f"{path}: missing; the index is incomplete, rebuild it") from None
            size = os.fstat(handles[role].fileno()).st_size
            if size != entry["bytes"]:
                raise GalleryIndexError(f"{path}: {size} bytes, the manifest says {entry['bytes']}: the file is "
                                        "truncated or was changed; rebuild the index")
        try:
            records = pd.read_parquet(handles["records"], engine="pyarrow",
                                      columns=["id", "name", "sha256", "camera", *HEAD_NAMES])
        except Exception as err:
            raise GalleryIndexError(f"{folder}: unreadable records table ({type(err).__name__}: {err})") from err
        (num, dim), _ = npy_shape(handles["embeddings"])
        if len(records) != meta["count"] or (num, dim) != (meta["count"], meta["dim"]):
            raise GalleryIndexError(f"{folder}: {len(records)} records and {num}x{dim} embeddings, the manifest "
                                    f"says {meta['count']} images of {meta['dim']}-d; rebuild the index")
    except BaseException:
        for handle in handles.values():
            handle.close()
        raise
    return GalleryIndex(folder, meta, records, handles)


def write_faiss(path: Path, index: faiss.Index) -> Path:
    import faiss

    with atomic_path(path) as tmp:
        try:
            faiss.write_index(index, str(tmp))
        except RuntimeError as err:  # faiss reports a failed fwrite (a full disk) as a RuntimeError with its C++ trace
            reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
            raise GalleryIndexError(f"{path}: faiss could not write the index ({reason}); free space on that disk or "
                                    "choose another output=") from err
    return path


def new_generation() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def generation_files(folder: Path, generation: str) -> dict[str, Path]:
    return {"records": folder / f"records-{generation}.parquet", "embeddings": folder / f"embeddings-{generation}.npy",
            "faiss": folder / f"faiss-{generation}.index"}


def check_own_folder(folder: Path) -> None:
    """A folder without an index may hold only what a build of it leaves (its lock, a crashed build's recorded files,
    an empty or planned ``shards/``): anything else is the user's, and an index is refused there (its clean-up
    would live beside the user's files)."""
    if not folder.is_dir() or (folder / MANIFEST).exists():
        return
    ours = {LOCK, PENDING, *(p.name for p in pending_files(folder))}
    shards = folder / SHARDS
    if shards.is_dir() and all(p.name.startswith(("plan.parquet", ".plan.parquet", "shard-", ".shard-"))
                               for p in shards.iterdir()):  # a crashed first build's plan and shards
        ours.add(SHARDS)
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in ours)
    if foreign:
        raise GalleryIndexError(f"{folder}: holds {len(foreign)} files that are not an index's (e.g. "
                                f"{', '.join(foreign[:3])}); an index needs a folder of its own: pass a new or empty output=")


def begin_generation(folder: Path) -> str:
    """A new generation's name, recorded in ``build.pending`` before any of its files is written."""
    generation = new_generation()
    write_json(folder / PENDING, {"generation": generation})
    return generation


def pending_files(folder: Path) -> list[Path]:
    """The files of the generation ``build.pending`` names (unless it is the committed one) and their temporary
    names (``atomic_path``'s ``.<name>.<random>.tmp``): what an interrupted build of this folder made."""
    generation = _json_field(folder / PENDING, "generation")
    if not _is_generation(generation) or generation == _json_field(folder / MANIFEST, "generation"):
        return []
    names = {p.name for p in generation_files(folder, generation).values()}
    return [p for p in folder.iterdir() if p.name in names or (
        p.name.endswith(".tmp") and any(p.name.startswith(f".{name}.") for name in names))]


def remove_pending(folder: Path) -> None:
    for path in pending_files(folder):
        path.unlink(missing_ok=True)
    (folder / PENDING).unlink(missing_ok=True)


def commit(folder: Path, meta: dict, generation: str) -> dict:
    """Make ``generation``'s three files (already written) the index: write the manifest, then remove the previous
    generation's files, by the names its manifest recorded (never other files of the folder)."""
    files = generation_files(folder, generation)
    previous = _recorded_names(folder)
    meta = {"format": FORMAT, "version": VERSION, **meta, "generation": generation,
            "heads": {h.name: list(h.classes) for h in HEADS},
            "files": {role: {"name": path.name, "bytes": path.stat().st_size} for role, path in files.items()}}
    write_json(folder / MANIFEST, meta)
    for name in previous - {p.name for p in files.values()}:
        (folder / name).unlink(missing_ok=True)
    (folder / PENDING).unlink(missing_ok=True)
    return meta


def _recorded_names(folder: Path) -> set[str]:
    """The file names of the generation the folder's manifest records: only ``records-<generation>.parquet`` and
    its two siblings, whatever else an edited manifest lists."""
    generation = _json_field(folder / MANIFEST, "generation")
    if not _is_generation(generation):
        return set()
    return {p.name for p in generation_files(folder, generation).values()}


def _is_generation(name) -> bool:
    """A generation name as ``new_generation`` makes them (a recorded name is never a path)."""
    return isinstance(name, str) and re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", name) is not None


def _json_field(path: Path, key: str):
    """``key`` of the JSON object in ``path``; None when the file is missing, unreadable or has no such key."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def describe(index: GalleryIndex) -> str:
    """``python -m src.index info``: what an index holds."""
    column = HEAD_NAMES.index("upcolor")
    counts = np.bincount(index.attributes[:, column], minlength=HEADS[column].num_classes)
    top = ", ".join(f"{HEADS[column].classes[i]} {int(counts[i])}" for i in np.argsort(-counts, kind="stable")[:4])
    size = sum(entry["bytes"] for entry in index.meta["files"].values())
    params = ", ".join(f"{k}={v}" for k, v in index.params.items())
    return "\n".join([
        f"{index.folder}: {len(index)} images of {index.gallery}",
        f"checkpoint {index.checkpoint} (sha256 {index.checkpoint_sha256[:12]})",
        f"input {index.height}x{index.width}, embedding dim {index.dim}, metric {index.metric}",
        f"{index.kind} index ({index.meta['factory']}{'; ' + params if params else ''}), {size / 2**20:.1f} MiB on disk"
        + (f", {index.tombstones} removed images still in the graph" if index.tombstones else ""),
        f"created {index.meta['created']}, updated {index.meta['updated']}"
        + (f", {len(index.unreadable)} unreadable images left out" if index.unreadable else ""),
        f"predicted upper colours: {top}, ...",
    ])
