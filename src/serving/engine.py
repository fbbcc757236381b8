"""What the person-search app does, without the web: one served index folder (re-read when a build commits a new
generation), uploads checked and decoded, queries embedded, the gallery ranked by image or by description.

Uploaded bytes are checked before anything is decoded: size (``max_upload_bytes``), then the header's pixel
count (``max_pixels``), then a full decode. Each failure is an :class:`UploadError` with the HTTP status it maps to
and a message naming what is wrong. Images leave the index only by records id (``image_path``): a client never
names a path.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as F

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.datasets import decode_resized
from src.data.records import DataError
from src.metrics.distance import pairwise_distance
from src.models.outputs import network_step
from src.retrieval.describe import search_description
from src.retrieval.filtering import filter_mask, parse_filter
from src.retrieval.search import match_probabilities, query_network, rank, rows_by_hash
from src.retrieval.store import MANIFEST, GalleryIndex, GalleryIndexError, load_index, read_manifest
from src.retrieval.verify import decide

log = logging.getLogger(__name__)


def reranking(postprocess: dict | None = None) -> dict:
    """The retrieval post-processing of the page's re-ranking toggle: ``postprocess`` (``src.serve`` composes
    ``conf/postprocess``), else conf/postprocess/default.yaml, with re-ranking on."""
    if postprocess is None:
        from src.config import group_default

        postprocess = group_default("postprocess")
    return {**postprocess, "rerank": {**postprocess.get("rerank", {}), "enabled": True}}


class UploadError(ValueError):
    """A bad upload; ``status`` is the HTTP status it answers (400, 413, 415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_top_k: int = 200
    max_rank: int = 1000  # the deepest rank paging reaches (offset + top_k)
    max_decodes: int = 2  # uploads decoded at once per worker; the others wait (a decode can take ~100 MB)


def check_upload(data: bytes, limits: Limits) -> tuple[int, int]:
    """(width, height) of an acceptable upload; an :class:`UploadError` naming the problem otherwise."""
    if not data:
        raise UploadError(400, "empty upload: the file has 0 bytes")
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"upload of {len(data)} bytes is over the limit of {limits.max_upload_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height, kind = *image.size, image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        why = f"no image format starts with {data[:12]!r}" if isinstance(err, UnidentifiedImageError) else str(err)
        raise UploadError(415, f"not an image this server reads (JPEG, PNG, BMP, WebP, ...): {why}") from None
    if width * height > limits.max_pixels:
        raise UploadError(413, f"{kind} image of {width}x{height} = {width * height} pixels is over the limit of "
                               f"{limits.max_pixels} pixels")
    if width < 1 or height < 1:
        raise UploadError(400, f"{kind} image of {width}x{height} pixels has no pixels")
    return width, height


def decode_upload(data: bytes, height: int, width: int, limits: Limits) -> torch.Tensor:
    """Checked upload -> float (3, height, width) in [0, 1], decoded and resized exactly as gallery images are."""
    check_upload(data, limits)
    with tempfile.TemporaryDirectory(prefix="upload_") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            image = decode_resized(path, height, width)
        except DataError as err:  # truncated or corrupt: the decoder's reason, without the temporary path
            raise UploadError(400, "the image cannot be decoded (truncated or corrupt): "
                                   + str(err).replace(f"{path}: ", "").replace(str(path), "upload")) from None
    return F.to_dtype(image, torch.float32, scale=True)


@dataclass
class Served:
    """One generation of the index with what queries need, read once."""

    index: GalleryIndex
    generation: str
    probabilities: dict[str, np.ndarray]
    net: object = None
    net_lock: threading.Lock = field(default_factory=threading.Lock)
    calibration: dict | None = None  # the network's P(same identity) of plain distances (released files carry one)

    def network(self):
        with self.net_lock:
            if self.net is None:  # its SHA-256 must be the index's; its contract carries the calibration
                self.net, contract = query_network(self.index, None)
                self.calibration = contract.calibration("plain")
            return self.net


class Engine:
    """The served index folder. Every ``reload_every`` seconds at most, a request looks at the manifest; a new
    generation (a build committed) is loaded and swapped in whole, while running requests finish on the old one
    (its files stay open: see ``store.load_index``)."""

    def __init__(self, folder: str | Path, limits: Limits = Limits(), reload_every: float = 1.0,
                 postprocess: dict | None = None):
        self.folder, self.limits, self.reload_every = Path(folder), limits, reload_every
        self.postprocess = reranking(postprocess)
        self._decoding = threading.BoundedSemaphore(limits.max_decodes)
        self._lock = threading.Lock()
        self._served = self._load(None)
        self._stamp = self._manifest_stamp()
        self._checked = time.monotonic()

    def _manifest_stamp(self):
        try:
            stat = os.stat(self.folder / MANIFEST)
            return stat.st_mtime_ns, stat.st_ino, stat.st_size
        except FileNotFoundError:
            return None

    def _load(self, previous: Served | None) -> Served:
        index = load_index(self.folder)
        index.faiss  # noqa: B018 (read now, not by the first query)
        served = Served(index, index.meta["generation"], index.probabilities)
        if previous is not None and previous.net is not None and previous.index.checkpoint_sha256 == index.checkpoint_sha256:
            served.net, served.calibration = previous.net, previous.calibration
        elif index.checkpoint and Path(index.checkpoint).is_file():
            served.network()  # loaded now, not by the first photo query
        return served

    @property
    def served(self) -> Served:
        if time.monotonic() - self._checked >= self.reload_every:
            with self._lock:
                if time.monotonic() - self._checked >= self.reload_every:
                    stamp = self._manifest_stamp()
                    if stamp != self._stamp:
                        try:
                            if read_manifest(self.folder)["generation"] != self._served.generation:
                                self._served = self._load(self._served)
                            self._stamp = stamp
                        except (GalleryIndexError, OSError):  # mid-commit or removed: keep serving the loaded one
                            pass
                    self._checked = time.monotonic()
        return self._served

    # ------------------------------------------------------------------------------------------------ queries
    def embed(self, data: bytes) -> tuple[np.ndarray, dict[str, np.ndarray], Served]:
        """(embedding (1, D), per-head probabilities (1, classes)) of an uploaded image."""
        served = self.served
        if not served.index.checkpoint:
            raise GalleryIndexError(f"{served.index.folder.name} was built from embeddings with no checkpoint: search it by "
                                    "description or by gallery id; a photo needs an index built by python -m src.index build")
        with self._decoding:  # 60 parallel 4096x4096 uploads decoded at once would hold gigabytes
            image = decode_upload(data, served.index.height, served.index.width, self.limits)
        net = served.network()
        with torch.inference_mode():  # the one batch step, alone: no loader or loop for one image
            out = network_step(net, image[None], embeds=True)
        return out["embedding"].numpy(), {n: out[n].numpy() for n in HEAD_NAMES}, served

    def rank(self, served: Served, q: np.ndarray, exclude: list[int], top_k: int, filter=None, rerank: bool = False
             ) -> tuple[list[tuple[int, float]], int]:
        """(matches (row, distance), images passing the filter) of one query embedding."""
        index = served.index
        conditions = parse_filter(filter)
        passing = filter_mask(index.attributes, conditions) if conditions else None
        num_passing = len(index) if passing is None else int(passing.sum())
        if num_passing == 0:
            return [], 0
        exclude = [r for r in exclude if passing is None or passing[r]]
        postprocess = self.postprocess if rerank else None  # the page's re-ranking toggle: conf/postprocess's settings
        return rank(index, q, top_k, exclude=[exclude], passing=passing, postprocess=postprocess)[0], num_passing

    @staticmethod
    def probabilities(served: Served, q: np.ndarray, matches: list[tuple[int, float]]) -> list[float] | None:
        found = match_probabilities(served.index, q, [matches], served.calibration)
        return None if found is None else found[0]

    def compare_uploads(self, first: bytes, second: bytes, far: float) -> dict:
        """Same person or not for two uploaded photos: distance, calibrated P(same identity), decision at ``far``."""
        a, _, served = self.embed(first)
        b, _, _ = self.embed(second)
        distance = float(pairwise_distance(torch.from_numpy(a), torch.from_numpy(b), served.index.metric)[0, 0])
        return {"metric": served.index.metric, **decide(distance, served.calibration, far)}

    def search_upload(self, data: bytes, top_k: int, filter=None, rerank: bool = False) -> dict:
        timing = {}
        started = time.perf_counter()
        q, probabilities, served = self.embed(data)
        timing["embed"] = time.perf_counter() - started
        copies = rows_by_hash(served.index, [hashlib.sha256(data).hexdigest()])
        excluded = next(iter(copies.values()), [])
        mark = time.perf_counter()
        matches, num_passing = self.rank(served, q, excluded, top_k, filter, rerank)
        timing["search"] = time.perf_counter() - mark
        return {"served": served, "matches": matches, "passing": num_passing, "timing": timing,
                "p_same": self.probabilities(served, q, matches),
                "query": {"attributes": predicted(probabilities), "own_copies": [int(served.index.ids[r]) for r in excluded]}}

    def search_row(self, row: int, top_k: int, filter=None, rerank: bool = False, served: Served | None = None) -> dict:
        served = served or self.served
        mark = time.perf_counter()
        q = served.index.rows(np.array([row]))
        copies = rows_by_hash(served.index, [served.index.sha256[row]])
        excluded = sorted({row, *next(iter(copies.values()), [])})
        matches, num_passing = self.rank(served, q, excluded, top_k, filter, rerank)
        return {"served": served, "matches": matches, "passing": num_passing, "p_same": self.probabilities(served, q, matches),
                "timing": {"search": time.perf_counter() - mark}}

    def search_description(self, description, top_k: int, filter=None) -> dict:
        served = self.served
        mark = time.perf_counter()
        result = search_description(served.probabilities, served.index.attributes, description, top_k, filter)
        return {"served": served, "matches": result.matches, "passing": result.num_passing, "description": result.description,
                "conditions": result.conditions, "timing": {"search": time.perf_counter() - mark}}

    def row_of_id(self, served: Served, image_id: int) -> int:
        if not 0 <= image_id < 2**63:  # ids are int64: a larger number names no image (and would overflow numpy)
            raise KeyError(f"no image with id {image_id} in the index ({len(served.index)} images)")
        row = int(served.index.rows_of(np.array([image_id]))[0])
        if row < 0:
            raise KeyError(f"no image with id {image_id} in the index ({len(served.index)} images)")
        return row

    def image_path(self, image_id: int) -> Path:
        """The file of gallery image ``image_id``, symlinks resolved: its records name under the index's gallery
        folder; a name that would leave the gallery (absolute, ``..``, a symlink pointing out) is refused (KeyError,
        answered 404) even if the records file says so."""
        return self._checked_path(self.served, image_id)[0]

    def _checked_path(self, served: Served, image_id: int) -> tuple[Path, int]:
        row = self.row_of_id(served, image_id)
        name = str(served.index.names[row])
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name or "\x00" in name:
            refuse(image_id, name, "a name outside the gallery folder")
        try:
            root = Path(served.index.gallery).resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except (OSError, RuntimeError):  # gone, or a symlink loop
            refuse(image_id, name, "no longer in the gallery folder")
        if not path.is_relative_to(root):
            refuse(image_id, name, f"a link to {path}, outside the gallery folder {root}")
        return path, row

    def image(self, image_id: int) -> tuple[bytes, str]:
        """(bytes, media type) of gallery image ``image_id``: only a regular file inside the gallery folder whose
        SHA-256 is the one the index recorded (the bytes served are the bytes checked, so a file swapped meanwhile is
        not served); anything else is a KeyError (404) and a warning in the server's log."""
        served = self.served
        path, row = self._checked_path(served, image_id)
        name = str(served.index.names[row])
        try:
            with open(path, "rb", opener=lambda file, flags: os.open(file, flags | os.O_NOFOLLOW)) as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    refuse(image_id, name, "not a regular file")
                data = handle.read()
        except OSError:
            refuse(image_id, name, "not readable as a regular file")
        if hashlib.sha256(data).hexdigest() != served.index.sha256[row]:
            refuse(image_id, name, "changed since indexing (its SHA-256 is not the one the index recorded)")
        return data, mimetypes.guess_type(name)[0] or "application/octet-stream"


def refuse(image_id: int, name: str, why: str):
    """A gallery image the app will not serve: one warning line in the server's log, a KeyError (404) to the client
    that does not say where the file points."""
    log.warning("image %d (%s) not served: %s", image_id, name, why)
    raise KeyError(f"image {image_id} ({name}) is not available from the gallery folder")


def predicted(probabilities: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per head: the predicted class and every class's probability (of the first row)."""
    out = {}
    for head in HEADS:
        p = np.asarray(probabilities[head.name])[0]
        out[head.name] = {"class": head.classes[int(p.argmax())],
                          "probabilities": {c: round(float(v), 4) for c, v in zip(head.classes, p)}}
    return out
