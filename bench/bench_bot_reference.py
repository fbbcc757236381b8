"""A plain-PyTorch Bag-of-Tricks re-ID loop (issue 15): the reference `task=reid_strong` is measured against.

Recipe, as a new user would write it from the paper (Luo et al. 2019), no Lightning, no project model code:
EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``, ImageNet weights) at 128x64, global average pooling ->
BNNeck (bias frozen) -> bias-free identity classifier; identity cross-entropy with label smoothing 0.1 on the
BN-neck logits + batch-hard triplet (margin 0.3, Euclidean) on the pre-BN feature; P x K = 16 x 4 sampler;
``torch.optim.Adam(lr=3.5e-4, weight_decay=5e-4)`` (coupled L2), linear warm-up over 200 iterations then
constant; flip + pad-4 crop + random erasing (p=0.5, after normalisation, so erased pixels are the mean);
test: BN-neck feature averaged with the flipped image's, cosine distance. No attribute heads.

Only the data layer (``CourseSource``, ``split_by_identity``, ``query_gallery_split``) and the evaluation
(``pairwise_distance``, ``evaluate_rank``) are the project's, so both sides are scored on the same split
with the same protocol. Results go to ``--out`` (JSON lines, one per evaluation) and stdout.

    python bench/bench_bot_reference.py --iterations 1044 --eval-at 1044 --out outputs/issue15/bot_reference.jsonl
    python bench/bench_bot_reference.py --small          # a few iterations on the synthetic data (smoke test)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.sources import CourseSource  # noqa: E402  data layer only
from src.data.splits import query_gallery_split, split_by_identity  # noqa: E402
from src.metrics.distance import pairwise_distance  # noqa: E402  evaluation only
from src.metrics.rank import evaluate_rank  # noqa: E402
from src.models.backbones import efficientnet_lite_classifier  # noqa: E402  timm model + offline weights


# ----------------------------------------------------------------------------------------------- data
def decode_all(records, height: int, width: int) -> torch.Tensor:
    """Every image once, as uint8 (N, 3, H, W) (course crops are already 64x128)."""
    images = torch.empty((len(records), 3, height, width), dtype=torch.uint8)
    for i, record in enumerate(records):
        image = decode_image(str(record.path), mode=ImageReadMode.RGB)
        if image.shape[1:] != (height, width):
            image = v2.functional.resize(image, [height, width], antialias=True)
        images[i] = image
    return images


class Images(Dataset):
    def __init__(self, images: torch.Tensor, labels: list[int], transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(self.images[index]), self.labels[index]


class RandomIdentitySampler(Sampler[list[int]]):
    """Endless P x K batches: P random identities, K random images each (with replacement if fewer)."""

    def __init__(self, labels: list[int], p: int, k: int, seed: int):
        self.by_label = defaultdict(list)
        for index, label in enumerate(labels):
            self.by_label[label].append(index)
        self.ids, self.p, self.k = list(self.by_label), p, k
        self.rng = random.Random(seed)

    def __iter__(self):
        while True:
            batch = []
            for label in self.rng.sample(self.ids, self.p):
                members = self.by_label[label]
                batch += self.rng.sample(members, self.k) if len(members) >= self.k else self.rng.choices(members, k=self.k)
            yield batch


# ----------------------------------------------------------------------------------------------- model
class BotNet(nn.Module):
    def __init__(self, num_classes: int, pretrained: bool = True):
        super().__init__()
        body = efficientnet_lite_classifier("lite0", pretrained)
        self.mean, self.std = body.pretrained_cfg["mean"], body.pretrained_cfg["std"]
        body.reset_classifier(0)  # global average pooling -> 1280-d
        self.body = body
        self.bnneck = nn.BatchNorm1d(body.num_features)
        self.bnneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(body.num_features, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x):  # x: already normalised
        feature = self.body(x)
        normed = self.bnneck(feature)
        if self.training:
            return feature, self.classifier(normed)
        return normed


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    dist = torch.cdist(features, features).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    hardest_pos = (dist * same).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    return torch.relu(hardest_pos - hardest_neg + margin).mean()


# ----------------------------------------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(model, images: torch.Tensor, normalize, pids, camids, is_query: np.ndarray, batch: int = 256) -> dict:
    model.eval()
    feats = []
    for start in range(0, len(images), batch):
        x = normalize(images[start:start + batch].float() / 255).contiguous(memory_format=torch.channels_last)
        feats.append((model(x) + model(x.flip(3))) / 2)
    model.train()
    feats = torch.cat(feats)
    distmat = pairwise_distance(feats[is_query], feats[~is_query], "cosine")
    result = evaluate_rank(distmat, pids[is_query], pids[~is_query], camids[is_query], camids[~is_query], max_rank=10)
    return {k: round(100 * float(result[k]), 2) for k in ("mAP", "rank1", "rank5", "mINP")}


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="../shared/data/market1501-course")
    parser.add_argument("--small", action="store_true", help="a few iterations on the synthetic data (seconds)")
    parser.add_argument("--iterations", type=int, default=1044)
    parser.add_argument("--eval-at", type=int, nargs="*", default=None, help="iterations to evaluate at (default: the last)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3.5e-4)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=200, help="linear warm-up iterations, then constant lr")
    parser.add_argument("--erasing", type=float, default=0.5)
    parser.add_argument("--val-ratio", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-pretrained", action="store_true")
    parser.add_argument("--out", default=None, help="append one JSON line per evaluation")
    args = parser.parse_args()
    if args.small:
        from src.data.synthetic import generate_synthetic_dataset

        args.root = str(generate_synthetic_dataset(Path(".cache/synthetic-seed0-ids24"), num_train_ids=24, seed=0))
        args.iterations, args.eval_at, args.p, args.workers = 3, None, 4, 0
    eval_at = sorted(set(args.eval_at or [args.iterations]))

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    records = CourseSource(args.root).labelled()
    train, val = split_by_identity(records, args.val_ratio, args.split_seed)
    query_index, _ = query_gallery_split(val, args.split_seed)
    is_query = np.zeros(len(val), dtype=bool)
    is_query[query_index] = True
    label_of = {pid: i for i, pid in enumerate(sorted({r.pid for r in train}))}
    labels = [label_of[r.pid] for r in train]
    started = time.perf_counter()
    train_images, val_images = decode_all(train, args.height, args.width), decode_all(val, args.height, args.width)
    print(f"{len(train)} train images of {len(label_of)} ids, {len(val)} val images ({is_query.sum()} queries); "
          f"decoded in {time.perf_counter() - started:.0f} s", flush=True)

    model = BotNet(len(label_of), pretrained=not args.no_pretrained).to(memory_format=torch.channels_last)
    normalize = v2.Normalize(list(model.mean), list(model.std))
    transform = v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.Pad(4),
        v2.RandomCrop((args.height, args.width)),
        v2.ToDtype(torch.float32, scale=True),
        normalize,
        v2.RandomErasing(args.erasing),
    ])
    loader = DataLoader(Images(train_images, labels, transform),
                        batch_sampler=RandomIdentitySampler(labels, args.p, args.k, args.seed),
                        num_workers=args.workers, persistent_workers=args.workers > 0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                 weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: min(1.0, (it + 1) / max(1, args.warmup)))
    id_loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    val_pids = np.array([r.pid for r in val])
    val_camids = np.array([r.camid for r in val])

    model.train()
    started, losses, rows = time.perf_counter(), [], []
    for iteration, (images, targets) in enumerate(loader, start=1):
        feature, logits = model(images.contiguous(memory_format=torch.channels_last))
        loss = id_loss(logits, targets) + batch_hard_triplet(feature, targets, 0.3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if iteration % 50 == 0:
            print(f"it {iteration} loss {np.mean(losses[-50:]):.3f} lr {scheduler.get_last_lr()[0]:.2e} "
                  f"{(time.perf_counter() - started) / 60:.1f} min", flush=True)
        if iteration in eval_at:
            train_min = (time.perf_counter() - started) / 60
            row = {"iterations": iteration, "images_seen": iteration * args.p * args.k, "train_min": round(train_min, 1),
                   **evaluate(model, val_images, normalize, val_pids, val_camids, is_query),
                   "recipe": "BoT reference: Adam coupled L2 5e-4, warm-up 200 it + constant, no attributes",
                   "command": " ".join(sys.argv)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
        if iteration >= args.iterations:
            break
    print("\n| implementation | iterations | images seen | train min | mAP | rank-1 | rank-5 | mINP |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| plain BoT reference | {row['iterations']} | {row['images_seen']} | {row['train_min']} | {row['mAP']} | "
              f"{row['rank1']} | {row['rank5']} | {row['mINP']} |")


if __name__ == "__main__":
    main()
