"""A gallery index on disk: ``python -m src.index build ckpt_path=PATH gallery=DIR [output=FILE]``.

One ``.pt`` file (plain tensors, lists, dicts and strings: ``torch.load(weights_only=True)`` reads it) holds
the format version, the checkpoint's SHA-256, the input size, the retrieval metric and, per gallery image,
its path relative to the gallery folder, the file's SHA-256, the embedding (float32), the predicted class
of every attribute head and the per-head probabilities. ``python -m src.search`` ranks against it.

Running the command again reuses the index: an unchanged gallery (same names and file hashes, same
checkpoint) recomputes and rewrites nothing; added or changed images are embedded, removed ones dropped,
and everything else is kept as it is (embeddings are looked up by file hash, so a renamed file is not
re-embedded either). Unreadable images are skipped with one warning that lists them. An index made with
another checkpoint or input size is an error naming both, unless ``rebuild=true``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.datasets import decode_resized
from src.data.feature_cache import file_digest
from src.data.records import IMAGE_SUFFIXES, DataError
from src.io.atomic import atomic_path
from src.runtime import apply_threads
from src.models.loading import CheckpointError, build_from_checkpoint

INDEX_FORMAT = "market-par-reid gallery index"
INDEX_VERSION = 1


class GalleryIndexError(ValueError):
    """A missing or unreadable index file, or one that does not fit the request (other checkpoint, input size)."""


class UnreadableImagesWarning(UserWarning):
    """Images that could not be decoded and were left out (one warning per run, listing them)."""


@dataclass
class GalleryIndex:
    """The contents of an index file (see the module docstring). Rows are in ``names`` order."""

    checkpoint: str
    checkpoint_sha256: str
    height: int
    width: int
    metric: str
    gallery: str
    names: list[str]
    sha256: list[str]
    embeddings: torch.Tensor  # (N, D) float32
    attributes: torch.Tensor  # (N, 12) int64, class index per head (HEAD_NAMES order)
    probabilities: dict[str, torch.Tensor]  # head -> (N, classes) float32
    unreadable: dict[str, list[str]] = field(default_factory=dict)  # name -> [sha256, error] of undecodable files
    created: str = ""
    updated: str = ""

    def __len__(self) -> int:
        return len(self.names)

    def path(self, name: str) -> Path:
        """Where the gallery image ``name`` (a row's relative file name) lives."""
        return Path(self.gallery) / name

    def to_dict(self) -> dict:
        return {
            "format": INDEX_FORMAT, "version": INDEX_VERSION, "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256, "height": self.height, "width": self.width,
            "metric": self.metric, "gallery": self.gallery, "heads": {h.name: list(h.classes) for h in HEADS},
            "names": list(self.names), "sha256": list(self.sha256),
            "embeddings": self.embeddings.to(torch.float32).contiguous(),
            "attributes": self.attributes.to(torch.int64).contiguous(),
            "probabilities": {k: v.to(torch.float32).contiguous() for k, v in self.probabilities.items()},
            "unreadable": dict(self.unreadable), "created": self.created, "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict, path: str | Path = "index") -> GalleryIndex:
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            raise GalleryIndexError(f"{path}: not a gallery index of this project (no '{INDEX_FORMAT}' header)")
        if data.get("version") != INDEX_VERSION:
            raise GalleryIndexError(f"{path}: index format version {data.get('version')}, this code reads version "
                              f"{INDEX_VERSION}; rebuild it (python -m src.index ... rebuild=true)")
        heads = {h.name: h.num_classes for h in HEADS}  # class names are presentation; their number is the contract
        if {name: len(classes) for name, classes in (data.get("heads") or {}).items()} != heads:
            raise GalleryIndexError(f"{path}: made with other attribute heads {list(data.get('heads', {}))}; rebuild it")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


def load_index(path: str | Path) -> GalleryIndex:
    path = Path(path)
    if not path.is_file():
        raise GalleryIndexError(f"{path}: index file not found (make one with python -m src.index ckpt_path=... gallery=...)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise GalleryIndexError(f"{path}: not a loadable index file ({type(err).__name__}: {err})") from err
    return GalleryIndex.from_dict(data, path)


def save_index(index: GalleryIndex, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(index.to_dict(), tmp)
    return Path(path)


def gallery_files(gallery: str | Path) -> list[str]:
    """Image files under ``gallery`` (sub-folders included, hidden ones skipped), as sorted relative POSIX paths."""
    gallery = Path(gallery)
    if not gallery.is_dir():
        raise DataError(f"{gallery}: gallery folder not found")
    names = sorted(
        p.relative_to(gallery).as_posix() for p in gallery.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(gallery).parts)
    )
    if not names:
        raise DataError(f"{gallery}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
    return names


def default_index_path(gallery: str | Path, root_dir: str | Path = ".") -> Path:
    """``outputs/index/<gallery folder name>-<8 hex of its absolute path>.pt``: one index per gallery folder."""
    absolute = Path(os.path.abspath(gallery))  # as the user names it: symlinks are not resolved
    tag = hashlib.sha256(str(absolute).encode()).hexdigest()[:8]
    return Path(root_dir) / "outputs" / "index" / f"{absolute.name}-{tag}.pt"


# ------------------------------------------------------------------------------------------------ inference
class _SafeImages(Dataset):
    """Decoded, resized float images; an unreadable file gives ``ok=False`` and its error instead of raising."""

    def __init__(self, paths: list[Path], height: int, width: int):
        self.paths, self.height, self.width = paths, height, width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        try:
            image = F.to_dtype(decode_resized(self.paths[index], self.height, self.width), torch.float32, scale=True)
            return {"image": image, "ok": True, "index": index, "error": ""}
        except DataError as err:
            return {"image": torch.zeros(3, self.height, self.width), "ok": False, "index": index, "error": str(err)}


@dataclass
class Embedded:
    embeddings: torch.Tensor  # rows of the readable images, in input order
    probabilities: dict[str, torch.Tensor]
    ok: list[int]  # input positions of those rows
    errors: dict[int, str]  # input position -> error of the unreadable ones

    @property
    def attributes(self) -> torch.Tensor:
        return torch.stack([self.probabilities[name].argmax(1) for name in HEAD_NAMES], dim=1) if self.ok else \
            torch.empty(0, len(HEADS), dtype=torch.int64)


@torch.inference_mode()
def embed_images(net, paths: list[Path], height: int, width: int, *, batch_size: int = 64, num_workers: int = 0,
                 desc: str = "embedding") -> Embedded:
    """``net.embed_and_classify`` over the images: embeddings, per-head probabilities; unreadable files reported."""
    net.eval()
    loader = DataLoader(_SafeImages(paths, height, width), batch_size=batch_size, num_workers=num_workers)
    embeddings, probabilities = [], {name: [] for name in HEAD_NAMES}
    ok, errors = [], {}
    with tqdm(total=len(paths), desc=desc, unit="img") as progress:
        for batch in loader:
            good = batch["ok"]
            errors.update({int(i): e for i, e, g in zip(batch["index"], batch["error"], good) if not g})
            if good.any():
                embedding, logits = net.embed_and_classify(batch["image"][good])
                embeddings.append(embedding.float())
                for name in HEAD_NAMES:
                    probabilities[name].append(logits[name].float().softmax(-1))
                ok.extend(int(i) for i in batch["index"][good])
            progress.update(len(good))
    if not ok:
        return Embedded(torch.empty(0, 0), {name: torch.empty(0, h.num_classes) for name, h in zip(HEAD_NAMES, HEADS)}, [], errors)
    return Embedded(torch.cat(embeddings), {k: torch.cat(v) for k, v in probabilities.items()}, ok, errors)


def load_reid_net(ckpt_path: str | Path):
    """The network of a re-ID checkpoint and its retrieval metric (``hparams['metric']``, default euclidean)."""
    net, hparams = build_from_checkpoint(ckpt_path, "net.")
    if not hasattr(net, "embed_and_classify"):
        raise CheckpointError(f"{ckpt_path}: {type(net).__name__} has no retrieval embedding; pass a re-ID checkpoint "
                              "(task=reid or task=reid_strong)")
    return net, hparams.get("metric") or "euclidean"


# ------------------------------------------------------------------------------------------------ build / update
@dataclass
class BuildReport:
    path: Path
    total: int  # images in the index
    embedded: int  # images run through the network this time
    reused: int
    removed: int
    unreadable: list[str]
    written: bool  # False: the index was already up to date and the file was not touched

    def summary(self) -> str:
        if not self.written:
            return f"{self.path}: up to date ({self.total} images, nothing recomputed)"
        return (f"{self.path}: {self.total} images ({self.embedded} embedded, {self.reused} reused, "
                f"{self.removed} removed" + (f", {len(self.unreadable)} unreadable skipped" if self.unreadable else "") + ")")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_compatible(old: GalleryIndex, path: Path, ckpt_path: str | Path, ckpt_sha: str, height: int, width: int) -> None:
    if old.checkpoint_sha256 != ckpt_sha:
        raise GalleryIndexError(
            f"{path} was built with checkpoint {old.checkpoint} (sha256 {old.checkpoint_sha256[:12]}), not with "
            f"{ckpt_path} (sha256 {ckpt_sha[:12]}); use another output=FILE for this checkpoint, or rebuild=true to replace the index"
        )
    if (old.height, old.width) != (height, width):
        raise GalleryIndexError(
            f"{path} was built at input size {old.height}x{old.width}, asked for {height}x{width}; pass "
            f"data.height={old.height} data.width={old.width}, another output=FILE, or rebuild=true"
        )


def build_index(ckpt_path: str | Path, gallery: str | Path, output: str | Path, *, height: int, width: int,
                batch_size: int = 64, num_workers: int = 0, rebuild: bool = False) -> BuildReport:
    """Create or update the index of ``gallery`` at ``output`` (see the module docstring)."""
    gallery, output, ckpt_path = Path(os.path.abspath(gallery)), Path(output), Path(ckpt_path)
    if not ckpt_path.is_file():
        raise CheckpointError(f"{ckpt_path}: checkpoint not found")
    names = gallery_files(gallery)
    ckpt_sha = file_digest(ckpt_path)
    old = load_index(output) if output.exists() and not rebuild else None
    if old is not None:
        check_compatible(old, output, ckpt_path, ckpt_sha, height, width)
    hashes = [file_digest(gallery / n) for n in tqdm(names, desc="hashing gallery", unit="img", leave=False)]
    checkpoint = os.path.abspath(ckpt_path)

    row_of_hash = {} if old is None else {h: i for i, h in enumerate(old.sha256)}
    old_unreadable = {} if old is None else old.unreadable
    known_bad = {n: e for n, e in old_unreadable.items()}
    todo = [i for i, (n, h) in enumerate(zip(names, hashes)) if h not in row_of_hash and known_bad.get(n, [None])[0] != h]
    still_bad = {n: known_bad[n] for n, h in zip(names, hashes) if h not in row_of_hash and known_bad.get(n, [None])[0] == h}
    readable = [i for i, n in enumerate(names) if n not in still_bad]
    unchanged = (old is not None and not todo and old.names == [names[i] for i in readable]
                 and old.sha256 == [hashes[i] for i in readable] and old.unreadable == still_bad
                 and old.checkpoint == checkpoint and old.gallery == str(gallery))
    if unchanged:
        if still_bad:
            _warn_unreadable({n: error for n, (_, error) in still_bad.items()})
        return BuildReport(output, len(old), 0, len(old), 0, sorted(still_bad), written=False)

    if todo:
        net, metric = load_reid_net(ckpt_path)
        fresh = embed_images(net, [gallery / names[i] for i in todo], height, width, batch_size=batch_size,
                             num_workers=num_workers, desc="embedding gallery")
    else:  # only removals, renames or moved files: no network needed
        metric, fresh = old.metric, Embedded(torch.empty(0, 0), {}, [], {})
    errors = {names[todo[i]]: e for i, e in fresh.errors.items()}
    hash_of = dict(zip(names, hashes))
    unreadable = {**still_bad, **{n: [hash_of[n], e] for n, e in errors.items()}}
    if unreadable:
        _warn_unreadable({n: error for n, (_, error) in unreadable.items()})

    # every kept row is either a fresh one or an old row with the same file hash: one gather per table
    fresh_row = {todo[i]: r for r, i in enumerate(fresh.ok)}
    kept = [i for i in range(len(names)) if i in fresh_row or hashes[i] in row_of_hash]
    if not kept:
        raise DataError(f"{gallery}: none of the {len(names)} images could be read; nothing to index")
    num_old = 0 if old is None else len(old)
    source = torch.tensor([num_old + fresh_row[i] if i in fresh_row else row_of_hash[hashes[i]] for i in kept])

    def combine(old_rows: torch.Tensor | None, fresh_rows: torch.Tensor) -> torch.Tensor:
        parts = [t for t in (old_rows, fresh_rows) if t is not None and len(t)]
        return torch.cat(parts)[source]

    embeddings = combine(old.embeddings if old is not None else None, fresh.embeddings)
    attributes = combine(old.attributes if old is not None else None, fresh.attributes)
    probabilities = {name: combine(old.probabilities[name] if old is not None else None, fresh.probabilities.get(name, torch.empty(0)))
                     for name in HEAD_NAMES}
    index = GalleryIndex(
        checkpoint=checkpoint, checkpoint_sha256=ckpt_sha, height=height, width=width, metric=metric,
        gallery=str(gallery), names=[names[i] for i in kept], sha256=[hashes[i] for i in kept],
        embeddings=embeddings, attributes=attributes, probabilities=probabilities, unreadable=unreadable,
        created=old.created if old is not None else _now(), updated=_now(),
    )
    save_index(index, output)
    removed = 0 if old is None else len(set(old.names) - set(names))
    return BuildReport(output, len(index), len(fresh.ok), len(kept) - len(fresh.ok), removed, sorted(unreadable), written=True)


def _warn_unreadable(errors: dict[str, str]) -> None:
    shown = "; ".join(error for _, error in sorted(errors.items())[:20])  # each DataError names its file
    more = f" (+{len(errors) - 20} more)" if len(errors) > 20 else ""
    warnings.warn(f"skipped {len(errors)} unreadable images: {shown}{more}", UnreadableImagesWarning, stacklevel=3)


def describe(index: GalleryIndex, path: str | Path) -> str:
    counts = torch.bincount(index.attributes[:, HEAD_NAMES.index("upcolor")], minlength=HEADS[-2].num_classes)
    top = ", ".join(f"{HEADS[-2].classes[i]} {int(counts[i])}" for i in counts.argsort(descending=True)[:4].tolist())
    return "\n".join([
        f"{path}: {len(index)} images of {index.gallery}",
        f"checkpoint {index.checkpoint} (sha256 {index.checkpoint_sha256[:12]})",
        f"input {index.height}x{index.width}, embedding dim {index.embeddings.shape[1]}, metric {index.metric}",
        f"created {index.created}, updated {index.updated}" + (f", {len(index.unreadable)} unreadable images left out" if index.unreadable else ""),
        f"predicted upper colours: {top}, ...",
    ])


# ------------------------------------------------------------------------------------------------ CLI
ACTIONS = ("build", "info")


def hydra_argv(argv: list[str]) -> list[str]:
    """Let ``python -m src.index build ...`` / ``info ...`` work: a leading action word becomes ``action=WORD``."""
    if len(argv) > 1 and argv[1] in ACTIONS:
        return [argv[0], f"action={argv[1]}", *argv[2:]]
    return argv


@hydra.main(version_base="1.3", config_path="../conf", config_name="index")
def main(cfg: DictConfig) -> None:
    apply_threads(cfg.get("torch_threads"))
    if cfg.action not in ACTIONS:
        raise ValueError(f"action={cfg.action}: expected one of {ACTIONS}")
    if cfg.action == "info":
        path = cfg.get("index") or cfg.get("output")
        if not path:
            raise ValueError("info needs index=FILE")
        print(describe(load_index(path), path))
        return
    if cfg.get("ckpt_path") is None or cfg.get("gallery") is None:
        raise ValueError("build needs ckpt_path=PATH and gallery=DIR")
    output = cfg.get("output") or default_index_path(cfg.gallery, cfg.paths.root_dir)
    report = build_index(cfg.ckpt_path, cfg.gallery, output, height=cfg.data.height, width=cfg.data.width,
                         batch_size=cfg.batch_size, num_workers=cfg.data.num_workers, rebuild=cfg.rebuild)
    print(report.summary())


if __name__ == "__main__":
    sys.argv = hydra_argv(sys.argv)
    main()
