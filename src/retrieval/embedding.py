"""Images -> retrieval embeddings and attribute probabilities: the one inference path of gallery builds (one or
many processes) and of queries. An unreadable image is reported, never fatal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.datasets import decode_resized
from src.data.records import IMAGE_SUFFIXES, DataError
from src.models.loading import CheckpointError, build_from_checkpoint


def image_files(folder: str | Path) -> list[str]:
    """Image files under ``folder`` (sub-folders included, hidden ones skipped), as sorted relative POSIX paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: gallery folder not found")
    names = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not names:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
    return names


class ImageFiles(Dataset):
    """Decoded, resized float images; an unreadable file gives ``ok=False`` and its error instead of raising."""

    def __init__(self, paths: list[Path], height: int, width: int):
        self.paths, self.height, self.width = paths, height, width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        try:
            image = F.to_dtype(decode_resized(self.paths[index], self.height, self.width), torch.float32, scale=True)
            return {"image": image, "ok": True, "position": index, "error": ""}
        except DataError as err:
            return {"image": torch.zeros(3, self.height, self.width), "ok": False, "position": index, "error": str(err)}


def load_reid_net(ckpt_path: str | Path):
    """The network of a re-ID checkpoint (in eval mode) and its retrieval metric (``hparams['metric']``, default euclidean)."""
    net, hparams = build_from_checkpoint(ckpt_path, "net.")
    if not hasattr(net, "embed_and_classify"):
        raise CheckpointError(f"{ckpt_path}: {type(net).__name__} has no retrieval embedding; pass a re-ID checkpoint "
                              "(task=reid or task=reid_strong)")
    return net.eval(), hparams.get("metric") or "euclidean"


@torch.inference_mode()
def embed_batch(net, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(embeddings, per-head probabilities) of the readable images of a batch of :class:`ImageFiles`."""
    good = torch.as_tensor(batch["ok"], dtype=torch.bool)
    if not good.any():
        return torch.empty(0, 0), {h.name: torch.empty(0, h.num_classes) for h in HEADS}
    embedding, logits = net.embed_and_classify(batch["image"][good])
    return embedding.float(), {name: logits[name].float().softmax(-1) for name in HEAD_NAMES}


@dataclass
class Embedded:
    embeddings: np.ndarray  # rows of the readable images, in input order
    probabilities: dict[str, np.ndarray]
    ok: list[int]  # input positions of those rows
    errors: dict[int, str]  # input position -> error of the unreadable ones

    @property
    def attributes(self) -> np.ndarray:
        if not self.ok:
            return np.empty((0, len(HEADS)), np.int64)
        return np.stack([self.probabilities[name].argmax(1) for name in HEAD_NAMES], axis=1)


def embed_images(net, paths: list[Path], height: int, width: int, *, batch_size: int = 64, num_workers: int = 0,
                 desc: str = "embedding") -> Embedded:
    """``net.embed_and_classify`` over the images in this process (queries; builds use ``sharded``)."""
    loader = DataLoader(ImageFiles(paths, height, width), batch_size=batch_size, num_workers=num_workers)
    embeddings, probabilities = [], {name: [] for name in HEAD_NAMES}
    ok, errors = [], {}
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as progress:
        for batch in loader:
            good = batch["ok"]
            errors.update({int(i): e for i, e, g in zip(batch["position"], batch["error"], good) if not g})
            if good.any():
                embedding, probs = embed_batch(net, batch)
                embeddings.append(embedding.numpy())
                for name in HEAD_NAMES:
                    probabilities[name].append(probs[name].numpy())
                ok.extend(int(i) for i in batch["position"][good])
            progress.update(len(good))
    if not ok:
        return Embedded(np.empty((0, 0), np.float32), {h.name: np.empty((0, h.num_classes), np.float32) for h in HEADS},
                        [], errors)
    return Embedded(np.concatenate(embeddings), {k: np.concatenate(v) for k, v in probabilities.items()}, ok, errors)
