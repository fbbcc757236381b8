"""Benchmark (accuracy): search by description on the validation identities, against their annotated attributes.

    python bench/bench_description_search.py --ckpt CKPT [--data-root DIR] [--height H --width W]
    python bench/bench_description_search.py --small      # random-weight network on tiny synthetic data (smoke test)

Every validation image (the seeded identity split of training: ``--val-ratio``, ``--split-seed``) gets its attribute
probabilities from the checkpoint (any of this project: attributes, reid, reid_strong; test-time flip). For each
of a fixed set of 2-3-attribute descriptions, the images whose *annotated* attributes match are relevant, and the
images are ranked by the product of the described probabilities (``src/retrieval/describe.py``, what
``src.search`` with a filter and no query and the app's description search do). Reported: AP per description and
their mean (mAP), beside the AP of a random ranking (the share of relevant images) and the precision / recall of
a hard filter on the predicted classes (what ``filter=`` keeps).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch
from _common import REPO, machine_line, markdown_table

sys.path.insert(0, str(REPO))

from src.data.splits import split_by_identity  # noqa: E402
from src.retrieval.describe import description_map  # noqa: E402
from src.retrieval.filtering import filter_mask, parse_filter  # noqa: E402

DESCRIPTIONS = (
    "gender=female,upcolor=red",
    "gender=female,backpack=yes",
    "gender=male,upcolor=black",
    "upcolor=white,downcolor=black",
    "upcolor=blue,downcolor=blue",
    "gender=male,hat=yes",
    "gender=female,clothes=dress",
    "up=short_sleeve,down=short_lower",
    "gender=female,hair=long_hair,handbag=yes",
    "gender=male,backpack=yes,upcolor=black",
    "upcolor=gray,downcolor=black,bag=yes",
    "gender=male,upcolor=green,down=long_lower",
)


def probabilities_of(ckpt: str, records, height: int | None, width: int | None, batch_size: int):
    from src.inference import embed_and_classify_records
    from src.models.loading import load_network

    net, contract = load_network(ckpt)
    height, width = contract.input_size(height, width)
    _, probabilities = embed_and_classify_records(net, records, height, width, batch_size, 0, True,
                                                  embeds=contract.embeds)
    return {name: value.numpy() for name, value in probabilities.items()}, f"{height}x{width}"


def small_setup(folder: str, batch_size: int):
    from src.data.sources import SyntheticSource
    from src.inference import embed_and_classify_records
    from src.models.backbones import efficientnet_lite
    from src.models.strong import StrongReidNet

    records = SyntheticSource(folder, num_train_ids=20, num_test_ids=4, seed=0).labelled()
    net = StrongReidNet(efficientnet_lite("lite0", pretrained=False), num_identities=16).eval()
    _, val = split_by_identity(records, 0.2, 0)
    _, probabilities = embed_and_classify_records(net, val, 128, 64, batch_size, 0, True, embeds=True)
    return val, {name: value.numpy() for name, value in probabilities.items()}, "128x64"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a checkpoint of this project (task=attributes, reid or reid_strong)")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared/data/market1501-course"))
    parser.add_argument("--height", type=int, default=None, help="default: the checkpoint's input size")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--val-ratio", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--small", action="store_true", help="random network on tiny synthetic data (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.small:
        val, probabilities, size = small_setup(tempfile.mkdtemp(prefix="bench_describe_"), args.batch_size)
        source = "synthetic (random weights)"
    else:
        if not args.ckpt:
            parser.error("--ckpt is required (or --small)")
        from src.data.sources import CourseSource

        _, val = split_by_identity(CourseSource(args.data_root).labelled(), args.val_ratio, args.split_seed)
        probabilities, size = probabilities_of(args.ckpt, val, args.height, args.width, args.batch_size)
        source = f"{args.data_root} with {args.ckpt}"
    seconds = time.perf_counter() - started
    truth = np.array([r.labels for r in val], dtype=np.int64)
    mean_ap, rows = description_map(truth, probabilities, DESCRIPTIONS)
    predicted = np.stack([probabilities[name].argmax(1) for name in probabilities], axis=1)
    table = []
    for row in rows:
        relevant = filter_mask(truth, parse_filter(row["description"]))
        kept = filter_mask(predicted, parse_filter(row["description"]))
        recall = f"{100 * relevant[kept].sum() / relevant.sum():.1f}" if relevant.any() else "-"
        precision = "-" if row["filter_precision"] is None else f"{100 * row['filter_precision']:.1f}"
        table.append([row["description"], row["relevant"], "-" if row["ap"] is None else f"{100 * row['ap']:.1f}",
                      f"{100 * relevant.mean():.1f}", f"{kept.sum()}", precision, recall])
    chance = np.mean([r["relevant"] / len(val) for r in rows if r["ap"] is not None]) if rows else float("nan")
    print(f"# description search on {len(val)} validation images of {len({r.pid for r in val})} identities; {source}; "
          f"{size}, flip; inference {seconds:.0f} s")
    print(machine_line(args.threads))
    print(markdown_table(["description", "relevant", "AP %", "random AP %", "filter keeps", "filter precision %",
                          "filter recall %"], table))
    print(f"\nmAP of {sum(r['ap'] is not None for r in rows)} descriptions: {100 * mean_ap:.1f}% "
          f"(random ranking: {100 * chance:.1f}%)")


if __name__ == "__main__":
    main()
