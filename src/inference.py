"""Batch inference over image records: embeddings, attribute logits, content hashes."""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from src.data.datasets import ImageDataset
from src.data.records import ImageRecord


@torch.no_grad()
def embed_records(net, records: list[ImageRecord], height: int, width: int, batch_size: int = 256,
                  num_workers: int = 2, desc: str = "embedding") -> torch.Tensor:
    """(N, D) retrieval embeddings of ``net.embed`` for the records' images."""
    net = fastest_inference(net, len(records))
    loader = DataLoader(ImageDataset(records, height, width), batch_size=batch_size, num_workers=num_workers)
    return torch.cat([net.embed(batch["image"]) for batch in tqdm(loader, desc=desc, unit="batch")])


@torch.no_grad()
def embed_and_classify_records(net, records: list[ImageRecord], height: int, width: int, batch_size: int = 256,
                               num_workers: int = 2, desc: str = "embedding + attributes") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One backbone pass per image -> (embeddings (N, D), attribute probabilities per head)."""
    net = fastest_inference(net, len(records))
    loader = DataLoader(ImageDataset(records, height, width), batch_size=batch_size, num_workers=num_workers)
    embeddings, probabilities = [], {}
    for batch in tqdm(loader, desc=desc, unit="batch"):
        embedding, logits = net.embed_and_classify(batch["image"])
        embeddings.append(embedding)
        for name, value in logits.items():
            probabilities.setdefault(name, []).append(value.float().softmax(-1))
    return torch.cat(embeddings), {name: torch.cat(v) for name, v in probabilities.items()}


COMPILE_MIN_IMAGES = 2000  # below this, compilation (~30 s) costs more than it saves


def fastest_inference(net, num_images: int, compile: bool | str = "auto"):
    """The fastest setting within 1e-3 of float32 eager (BENCHMARKS.md #7): channels_last, plus torch.compile
    of the backbone (2.9x eager vs 1.95x) when there are enough images to pay for the compilation."""
    from src.models.backbones import Backbone

    net = net.eval().to(memory_format=torch.channels_last)
    if compile is True or (compile == "auto" and num_images >= COMPILE_MIN_IMAGES):
        for module in net.modules():
            if isinstance(module, Backbone):
                module.body = torch.compile(module.body)
    return net


def content_hashes(records: list[ImageRecord]) -> list[str]:
    return [hashlib.sha256(r.path.read_bytes()).hexdigest() for r in records]
