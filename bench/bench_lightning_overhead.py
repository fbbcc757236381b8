"""Benchmark 5: training throughput of the attribute LightningModule vs a plain PyTorch loop.

    python bench/bench_lightning_overhead.py [--small] [--steps 60] [--repeats 3]

Same network (MarketClassifier on EfficientNet-Lite0), same batches (one fixed synthetic batch set in
memory), same SGD optimizer and summed cross-entropy; the first steps are warm-up and not timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from src.data.attributes import HEADS
from src.models.attribute_module import AttributeModule

NET = {"_target_": "src.models.heads.MarketClassifier",
       "backbone": {"_target_": "src.models.backbones.efficientnet_lite", "variant": "lite0", "pretrained": False}}
OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1e-3, "weight_decay": 1e-5, "momentum": 0.8}


class DictBatches(torch.utils.data.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "labels": self.labels[i], "pid": 0, "camid": 0, "index": i}


def data(num: int, height: int, width: int):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(num, 3, height, width, generator=generator)
    labels = torch.stack([torch.randint(h.num_classes, (num,), generator=generator) for h in HEADS], 1)
    return DictBatches(images, labels)


def plain_loop(dataset, batch_size: int, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    module = AttributeModule(NET, OPTIMIZER)  # same network construction, used as a plain nn.Module
    net = module.net.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, weight_decay=1e-5, momentum=0.8)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    done, start = 0, None
    while done < warmup + steps:
        for batch in loader:
            if done == warmup:
                start = time.perf_counter()
            logits = net(batch["image"].contiguous(memory_format=torch.channels_last))
            loss = sum(nn.functional.cross_entropy(logits[h.name], batch["labels"][:, i]) for i, h in enumerate(HEADS))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == warmup + steps:
                break
    return steps * batch_size / (time.perf_counter() - start)


class StepTimer(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start = warmup, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.perf_counter()


def lightning_loop(dataset, batch_size: int, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    module = AttributeModule(NET, OPTIMIZER)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=warmup + steps, limit_val_batches=0,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    trainer.fit(module, train_dataloaders=loader)
    return steps * batch_size / (time.perf_counter() - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    if args.small:
        args.steps, args.warmup, args.repeats, args.batch_size, args.height, args.width = 3, 1, 1, 8, 64, 32
    dataset = data(args.batch_size * 16, args.height, args.width)
    plain, lightning = [], []
    for _ in range(args.repeats):  # interleaved so both see the same machine load
        plain.append(plain_loop(dataset, args.batch_size, args.warmup, args.steps))
        lightning.append(lightning_loop(dataset, args.batch_size, args.warmup, args.steps))
    p, light = statistics.median(plain), statistics.median(lightning)
    print(f"\nattribute model training, batch {args.batch_size} at {args.height}x{args.width}, {args.steps} timed steps, "
          f"median of {args.repeats} interleaved repeats, torch threads {torch.get_num_threads()}\n")
    print("| loop | images/s | ratio to plain |")
    print("|---|---|---|")
    print(f"| plain PyTorch | {p:.1f} | 1.00x |")
    print(f"| Lightning (AttributeModule + Trainer) | {light:.1f} | {light / p:.2f}x |")


if __name__ == "__main__":
    main()
