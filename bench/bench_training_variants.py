"""Training variants of the strong re-ID step (``task=reid_strong``), side by side (issue 15): images per second
of the real ``StrongReidModule`` / ``StrongReidNet`` training step (forward, ID + triplet + attribute losses,
backward, Adam step) under a real ``pytorch_lightning.Trainer``, for one factor changed at a time from the default.

    nice -n 15 python bench/bench_training_variants.py [--steps 20] [--warmup 3] [--repeats 3] [--only KEY ...]
    python bench/bench_training_variants.py --small      # smoke test: tiny images, 1 timed step, 3 variants

Default: float32, eager, channels_last, 1 torch thread, frozen_stages 0, EfficientNet-Lite0 (ImageNet weights)
at 128x64, batch 64 = P 16 identities x K 4 images (random pixels, seeded; speed does not depend on content).
Each variant is the config ``python -m src.train task=reid_strong`` composes with the overrides in the table,
except channels_last off, which has no config key (StrongReidNet always feeds the backbone channels_last): the
bench undoes it with a forward pre-hook that makes the backbone's input contiguous again.

Every measurement runs in a fresh process (thread settings and compile caches start clean); repeats are
interleaved (round robin over the variants) so a change in machine load hits every variant alike. Reported:
median images/s over the repeats, its ratio to the default, and the seconds of the first (warm-up) steps,
where torch.compile pays its compilation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import src  # noqa: E402,F401  (sets OMP_WAIT_POLICY=PASSIVE before torch loads, as every entry point does)
from bench._common import isolated, machine_line, markdown_table  # noqa: E402

BASE = ["task=reid_strong", "torch_threads=1", "data.height=128", "data.width=64"]
# key -> (label, overrides of `python -m src.train`, channels_last)
VARIANTS = {
    "default": ("default: float32, eager, channels_last, 1 thread, frozen 0, 128x64", [], True),
    "bf16": ("bf16 autocast", ["trainer.precision=bf16-mixed"], True),
    "compile": ("torch.compile (training forward)", ["model.compile=true"], True),
    "contiguous": ("channels_last off", [], False),
    "threads2": ("2 torch threads", ["torch_threads=2"], True),
    "frozen2": ("frozen stages 2 (stem + blocks 0-1)", ["model.net.backbone.frozen_stages=2"], True),
    "frozen4": ("frozen stages 4 (stem + blocks 0-3)", ["model.net.backbone.frozen_stages=4"], True),
    "size256": ("256x128 (default otherwise)", ["data.height=256", "data.width=128"], True),
}
P, K = 16, 4
NUM_IDS = 480  # about the course split's training identities (the classifier's width)


def measure(key: str, warmup: int, steps: int, small: bool) -> dict:
    """One variant in this (fresh) process: images/s over ``steps`` timed training steps after ``warmup``."""
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from src.config import compose_config
    from src.data.attributes import HEADS
    from src.runtime import apply_threads, quiet_library_noise

    quiet_library_noise()
    label, overrides, channels_last = VARIANTS[key]
    extra = ["data.height=64", "data.width=32", "model.net.backbone.pretrained=false"] if small else []
    cfg = compose_config("train", [*BASE, *overrides, *extra], output_dir="/nonexistent")
    threads = apply_threads(cfg.torch_threads)
    p, height, width = (2 if small else P), cfg.data.height, cfg.data.width
    steps = max(round(steps * 128 * 64 / (height * width)), min(steps, 3)) if not small else steps  # ~equal timed work

    generator = torch.Generator().manual_seed(0)
    batches = []
    for b in range(4 if small else 8):  # distinct batches, cycled; pre-collated, so no loader cost is timed
        pids = (torch.arange(p) + b * p) % NUM_IDS + 1
        batches.append({
            "image": torch.rand(p * K, 3, height, width, generator=generator),
            "pid": pids.repeat_interleave(K),
            "labels": torch.stack([torch.randint(h.num_classes, (p * K,), generator=generator) for h in HEADS], 1),
        })

    class Batches(pl.LightningDataModule):
        pid_to_label = {pid: pid - 1 for pid in range(1, NUM_IDS + 1)}
        num_train_ids = NUM_IDS
        pseudo = None  # no pseudo-labelled identities

        def train_dataloader(self):
            return torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)

    class Clock(pl.Callback):
        def __init__(self):
            self.begin = self.start = self.end = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 0 and self.begin is None:
                self.begin = time.perf_counter()
            if trainer.global_step == warmup:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == warmup + steps:
                self.end = time.perf_counter()

    cfg.model.net.num_identities = NUM_IDS  # what setup() fills in from the training split
    module = instantiate(cfg.model, _recursive_=False)
    if not channels_last:  # StrongReidNet converts to channels_last; hand the backbone a contiguous tensor again
        module.net.backbone.body.register_forward_pre_hook(lambda m, args: (args[0].contiguous(),))
    clock = Clock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision=cfg.trainer.get("precision") or "32-true",
                         max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[clock])
    trainer.fit(module, datamodule=Batches())
    frozen = sum(p.numel() for p in module.net.parameters() if not p.requires_grad)
    return {"img_s": steps * p * K / (clock.end - clock.start), "warmup_s": clock.start - clock.begin, "steps": steps,
            "threads": threads, "size": f"{height}x{width}", "precision": str(trainer.precision),
            "compiled": module._compiled is not None, "frozen_params": frozen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20,
                        help="timed training steps per measurement at 128x64 (fewer at larger sizes, same pixels; 3 at least)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process measurements per variant, interleaved")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="these variants (the default is always run)")
    parser.add_argument("--small", action="store_true",
                        help="64x32 images, P=2, 1 timed step; default, channels_last off, frozen 2 unless --only: a smoke test")
    args = parser.parse_args()
    if args.small:
        args.steps, args.warmup, args.repeats = 1, 1, 1
    chosen = args.only or (["contiguous", "frozen2"] if args.small else list(VARIANTS))
    keys = ["default", *[k for k in VARIANTS if k != "default" and k in chosen]]

    load_before = machine_line("per row")
    results = {k: [] for k in keys}
    for repeat in range(args.repeats):
        for key in keys:
            out = isolated(measure, key, args.warmup, args.steps, args.small)
            results[key].append(out)
            print(f"repeat {repeat + 1}/{args.repeats} {key:10s} {out['img_s']:6.1f} img/s  warm-up "
                  f"{out['warmup_s']:5.1f} s  steps={out['steps']} threads={out['threads']} {out['size']} {out['precision']}"
                  f"{' compiled' if out['compiled'] else ''}", file=sys.stderr, flush=True)

    default = statistics.median(r["img_s"] for r in results["default"])
    rows = []
    for key in keys:
        label, overrides, channels_last = VARIANTS[key]
        speeds = [r["img_s"] for r in results[key]]
        last = results[key][-1]
        how = f"`{' '.join(overrides)}`" if overrides else ("- (bench hook: contiguous backbone input)" if not channels_last else "-")
        if key == "compile" and not all(r["compiled"] for r in results[key]):
            label += " (FELL BACK to eager)"
        rows.append([label, how, f"{statistics.median(speeds):.1f}",
                     f"{min(speeds):.1f}-{max(speeds):.1f}", f"{statistics.median(speeds) / default:.2f}x",
                     f"{statistics.median(r['warmup_s'] for r in results[key]):.1f}", last["threads"],
                     f"{last['frozen_params'] / 1e6:.2f}M"])
    batch = f"{2 * K if args.small else P * K} = P {2 if args.small else P} x K {K}"
    print(f"\nstrong re-ID training step (task=reid_strong: StrongReidModule under pytorch_lightning.Trainer), batch "
          f"{batch}, {args.steps} timed steps at 128x64 (the same pixels at larger sizes) after {args.warmup} warm-up, "
          f"median of {args.repeats} fresh-process repeats, interleaved\n")
    print(f"{load_before} (at start)\n{machine_line('per row')} (at end)\n")
    print(markdown_table(["variant", "overrides (beside task=reid_strong torch_threads=1 data.height=128 data.width=64)",
                          "img/s (median)", "range", "vs default", f"first {args.warmup} steps s", "threads",
                          "frozen params"], rows))
    print("\nThe 2-thread row is distorted when another process keeps the second core busy: the second thread then "
          "gets a fraction of a core (see the load average above); on two idle cores it would be faster.")


if __name__ == "__main__":
    main()
