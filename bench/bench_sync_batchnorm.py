"""DDP batch norm over the global batch (trainer=ddp's GlobalBatchNorm) against per-process statistics: step time.

Two gloo processes x 1 thread, each stepping the strong network (EfficientNet-Lite0, BN neck, attribute heads) on its
half of the batch, forward + backward + DDP's gradient all-reduce. Plain and global batch norm alternate in blocks
within one run, so both see the same machine load.

    python bench/bench_sync_batchnorm.py                   # 32 images per process at 128x64, 3 blocks of 10 steps
    python bench/bench_sync_batchnorm.py --small           # tiny: a smoke run of the same path
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_line, markdown_table  # noqa: E402
from src.models.backbones import efficientnet_lite  # noqa: E402
from src.models.strong import StrongReidNet  # noqa: E402
from src.models.sync_batchnorm import GlobalBatchNorm  # noqa: E402


class TrainingLoss(torch.nn.Module):
    """The training forward (features, identity logits, attribute heads) reduced to one number, under DDP."""

    def __init__(self, net: StrongReidNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.net.forward_train(images)
        heads = [out["feature"], out["normed"], out["id_logits"], *out["attributes"].values()]
        return sum(h.pow(2).mean() for h in heads)


def timed_steps(rank: int, args, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        nets = {"per-process statistics (trainer.plugins=[])": StrongReidNet(efficientnet_lite("lite0", pretrained=False), 600)}
        nets["global batch (trainer=ddp default)"] = GlobalBatchNorm().apply(
            StrongReidNet(efficientnet_lite("lite0", pretrained=False), 600))
        models = {label: DistributedDataParallel(TrainingLoss(net)) for label, net in nets.items()}
        images = torch.randn(args.batch, 3, args.height, args.height // 2)
        times = {label: [] for label in models}
        for block in range(args.blocks + 1):  # block 0 warms up
            for label, model in models.items():
                dist.barrier()
                start = time.perf_counter()
                for _ in range(args.steps):
                    model(images).backward()
                dist.barrier()
                if block:
                    times[label].append((time.perf_counter() - start) / args.steps)
        if rank == 0:
            torch.save(times, out)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="images per process")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    if args.small:
        args.batch, args.height, args.steps, args.blocks = 4, 64, 2, 1
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(timed_steps, args=(args, f"{tmp}/init", f"{tmp}/times.pt"), nprocs=2)
        times = torch.load(f"{tmp}/times.pt")
    print(machine_line(1))
    print(f"2 gloo processes x 1 thread, {args.batch} images per process at {args.height}x{args.height // 2}, "
          f"{args.blocks} blocks of {args.steps} steps (median of the blocks)")
    base = statistics.median(next(iter(times.values())))
    rows = [[label, f"{1000 * statistics.median(t):.0f}", f"{statistics.median(t) / base:.2f}x"] for label, t in times.items()]
    print(markdown_table(["batch norm", "ms per step", "against per-process"], rows))


if __name__ == "__main__":
    main()
