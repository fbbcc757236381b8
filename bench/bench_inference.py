"""Benchmark 7: attribute inference throughput, float32 eager vs channels_last vs bf16 autocast vs torch.compile.

    python bench/bench_inference.py [--small] [--images 2000] [--root ../shared/data/market1501-course/test]

Images are decoded once (not timed); every variant runs the same MarketClassifier on the same batches;
a variant is acceptable when its logits stay within 1e-3 of float32 eager (max abs difference).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from src.data.datasets import preload
from src.data.records import ImageRecord, list_images
from src.models.backbones import efficientnet_lite
from src.models.heads import MarketClassifier


def variants(net):
    def eager(x):
        return net(x)

    def channels_last(x):
        return net(x.contiguous(memory_format=torch.channels_last))

    def bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x.contiguous(memory_format=torch.channels_last))

    yield "float32 eager", eager, lambda: net.to(memory_format=torch.contiguous_format)
    yield "float32 channels_last", channels_last, lambda: net.to(memory_format=torch.channels_last)
    yield "bf16 autocast + channels_last", bf16, lambda: net.to(memory_format=torch.channels_last)
    compiled = {}

    def compiled_fn(x):
        if "fn" not in compiled:
            compiled["fn"] = torch.compile(net)
        return compiled["fn"](x.contiguous(memory_format=torch.channels_last))

    yield "torch.compile + channels_last", compiled_fn, lambda: net.to(memory_format=torch.channels_last)


@torch.no_grad()
def run(fn, batches):
    outputs, start = [], time.perf_counter()
    for batch in batches:
        outputs.append(torch.cat([v.float() for v in fn(batch).values()], 1))
    return time.perf_counter() - start, torch.cat(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--root", default="../shared/data/market1501-course/test")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    if args.small:
        args.images, args.height, args.width, args.batch_size, args.repeats, args.skip_compile = 16, 64, 32, 8, 1, True
    root = Path(args.root)
    if root.is_dir():
        records = [ImageRecord(p, -1, -1) for p in list_images(root, subfolders=False)[: args.images]]
        images = preload(records, args.height, args.width).float() / 255
        source = f"{len(records)} images of {root}"
    else:
        images = torch.rand(args.images, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
        source = f"{args.images} random images ({root} not found)"
    batches = list(images.split(args.batch_size))
    torch.manual_seed(0)
    net = MarketClassifier(efficientnet_lite("lite0", pretrained=True)).eval()
    rows, reference = [], None
    for name, fn, prepare in variants(net):
        if args.skip_compile and "compile" in name:
            continue
        prepare()
        run(fn, batches[:1])  # warm-up (and compilation)
        times = []
        for _ in range(args.repeats):
            seconds, out = run(fn, batches)
            times.append(seconds)
        reference = out if reference is None else reference
        rows.append((name, len(images) / statistics.median(times), float((out - reference).abs().max())))
    base = rows[0][1]
    print(f"\nattribute inference, {source}, {args.height}x{args.width}, batch {args.batch_size}, "
          f"median of {args.repeats}, torch threads {torch.get_num_threads()}\n")
    print("| variant | images/s | speed-up | max abs diff vs float32 | within 1e-3 |")
    print("|---|---|---|---|---|")
    for name, rate, diff in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x | {diff:.2e} | {'yes' if diff <= 1e-3 else 'no'} |")


if __name__ == "__main__":
    main()
