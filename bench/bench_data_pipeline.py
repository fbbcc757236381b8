"""Benchmark 6: data pipeline (decode + resize + augment from JPEG files) images/s with N loader workers,
next to the attribute model's training step rate, to tell which one limits training.

    python bench/bench_data_pipeline.py [--small] [--root ../shared/data/market1501-course] [--images 2048]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from src.data.attributes import HEADS
from src.data.datasets import ImageDataset, preload
from src.data.sources import CourseSource
from src.data.transforms import build_transform
from src.models.backbones import efficientnet_lite
from src.models.heads import MarketClassifier

AUGMENT = {"flip": 0.5, "random_erasing": 0.3, "color_jitter": 0.2, "rotation": 5.0, "shift": 0.05}


def loader_rate(dataset, workers: int, batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True)
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch["image"])
    return count / (time.perf_counter() - start)


def model_rate(height: int, width: int, batch_size: int, steps: int) -> float:
    net = MarketClassifier(efficientnet_lite("lite0", pretrained=False)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.8)
    images = torch.rand(batch_size, 3, height, width).contiguous(memory_format=torch.channels_last)
    labels = torch.stack([torch.randint(h.num_classes, (batch_size,)) for h in HEADS], 1)
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        logits = net(images)
        loss = sum(nn.functional.cross_entropy(logits[h.name], labels[:, i]) for i, h in enumerate(HEADS))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--root", default="../shared/data/market1501-course")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    sizes = [(128, 64), (256, 128)]
    workers = [0, 1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root)
        if args.small or not root.is_dir():
            from src.data.synthetic import generate_synthetic_dataset

            root = generate_synthetic_dataset(Path(tmp) / "synthetic", num_train_ids=8, num_test_ids=2)
            args.images, args.steps, sizes, workers = 64, 1, [(64, 32)], [0, 1]
        records = CourseSource(root).labelled()[: args.images]
        print(f"\ndata pipeline on {len(records)} images of {root}, batch {args.batch_size}, "
              f"augmentation {sorted(AUGMENT)}, torch threads {torch.get_num_threads()}\n")
        print("| input size | source | workers | images/s |")
        print("|---|---|---|---|")
        for height, width in sizes:
            transform = build_transform(height, width, **AUGMENT)
            for count in workers:
                rate = loader_rate(ImageDataset(records, height, width, transform), count, args.batch_size)
                print(f"| {height}x{width} | JPEG decode each epoch | {count} | {rate:.0f} |")
            cached = ImageDataset(records, height, width, transform, cache=preload(records, height, width))
            print(f"| {height}x{width} | decoded once (data.preload=true) | 0 | {loader_rate(cached, 0, args.batch_size):.0f} |")
            print(f"| {height}x{width} | model training step (lite0) | - | {model_rate(height, width, args.batch_size, args.steps):.0f} |")


if __name__ == "__main__":
    main()
