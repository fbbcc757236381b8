"""Benchmark (accuracy, not speed): attribute accuracy with test-time flips, re-ID neighbour consensus, ensembles.

    python bench/bench_attribute_consensus.py --ckpt RE_ID_CKPT [--data-root DIR] [--height 256 --width 128]
        [--ensemble ATTR_CKPT[@HxW] ...] [--ensemble-only]
    python bench/bench_attribute_consensus.py --small      # random-weight network on synthetic data (smoke test)

One inference pass over the validation identities (the seeded identity split of training), then side by
side: plain, + flip, + consensus over k re-ID neighbours (src/metrics/consensus.py) for several k, by plain
and by k-reciprocal re-ranked distance, and the identity oracle (the mean over all pictures of the true
person: the ceiling of any consensus, not a method). With ``--ensemble`` the same rows follow for the mean
probabilities of the checkpoint's heads (left out with ``--ensemble-only``) and the listed attribute networks.
The checkpoint must be a re-ID one (task=reid holds the frozen stage 1 and its heads; task=reid_strong its own).
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

from src.data.attributes import HEAD_NAMES  # noqa: E402
from src.data.splits import split_by_identity  # noqa: E402
from src.inference import ensemble_probabilities  # noqa: E402
from src.metrics.consensus import neighbour_consensus  # noqa: E402

KS = (5, 10, 20, 40)


@torch.no_grad()
def inference(net, records, height: int, width: int, batch_size: int = 64):
    """-> embeddings as the network retrieves with, plain and mirrored attribute probabilities."""
    from torch.utils.data import DataLoader

    from src.data.datasets import ImageDataset

    flips_itself = getattr(net, "flip_test", False)
    if flips_itself:
        net.flip_test = False
    embeddings, plain, mirrored = [], {n: [] for n in HEAD_NAMES}, {n: [] for n in HEAD_NAMES}
    for batch in DataLoader(ImageDataset(records, height, width), batch_size=batch_size):
        images = batch["image"]
        embedding, logits = net.embed_and_classify(images)
        embedding_mirrored, logits_mirrored = net.embed_and_classify(images.flip(3))
        embeddings.append((embedding + embedding_mirrored) / 2 if flips_itself else embedding)
        for name in HEAD_NAMES:
            plain[name].append(logits[name])
            mirrored[name].append(logits_mirrored[name])
    plain = {n: torch.cat(v) for n, v in plain.items()}
    mirrored = {n: torch.cat(v) for n, v in mirrored.items()}
    flipped = {n: ((plain[n] + mirrored[n]) / 2).softmax(1) for n in HEAD_NAMES}
    return torch.cat(embeddings), {n: v.softmax(1) for n, v in plain.items()}, flipped


def correct_matrix(probabilities: dict, labels: torch.Tensor) -> np.ndarray:
    """(N, heads) 1 where the image's predicted class is right."""
    return np.stack([(probabilities[n].argmax(1) == labels[:, i]).numpy() for i, n in enumerate(HEAD_NAMES)], 1).astype(float)


def identity_bootstrap(correct: np.ndarray, pids: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean accuracy (%) when the identities are resampled with replacement: the
    spread to expect from another draw of validation people (images of one person are not independent)."""
    ids, inverse = np.unique(pids, return_inverse=True)
    sums, counts = np.bincount(inverse, correct.mean(1), len(ids)), np.bincount(inverse, minlength=len(ids))
    picks = np.random.default_rng(seed).integers(0, len(ids), (resamples, len(ids)))
    means = 100 * sums[picks].sum(1) / counts[picks].sum(1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def identity_oracle(probabilities: dict, pids: np.ndarray) -> dict:
    out = {}
    for name, probs in probabilities.items():
        smoothed = probs.clone()
        for pid in np.unique(pids):
            rows = torch.from_numpy(pids == pid)
            smoothed[rows] = probs[rows].mean(0)
        out[name] = smoothed
    return out


def consensus_rows(label: str, probabilities: dict, embeddings, metric: str, ks, pids) -> list:
    rows = [(label, probabilities)]
    for rerank in (False, True):
        rows += [(f"{label} + consensus k={k}{' re-ranked' if rerank else ''}",
                  neighbour_consensus(embeddings, probabilities, k, metric, rerank=rerank)) for k in ks]
    rows.append((f"{label}: identity oracle (ceiling, not a method)", identity_oracle(probabilities, pids)))
    return rows


def parse_member(spec: str, height: int, width: int) -> tuple[str, int, int]:
    """``PATH`` or ``PATH@HxW`` -> (checkpoint, height, width)."""
    path, _, size = spec.partition("@")
    if size:
        height, width = (int(v) for v in size.lower().split("x"))
    return path, height, width


def small_setup(folder: str):
    from src.data.sources import SyntheticSource
    from src.models.backbones import efficientnet_lite
    from src.models.strong import StrongReidNet

    records = SyntheticSource(folder, num_train_ids=20, num_test_ids=4, seed=0).labelled()
    net = StrongReidNet(efficientnet_lite("lite0", pretrained=False), num_identities=16).eval()
    return net, records, "cosine", 128, 64, (2, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a task=reid or task=reid_strong checkpoint")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared/data/market1501-course"))
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--val-ratio", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ensemble", nargs="*", default=[], help="attribute checkpoints averaged in, PATH or PATH@HxW")
    parser.add_argument("--ensemble-only", action="store_true", help="leave the re-ID checkpoint's own heads out")
    parser.add_argument("--small", action="store_true", help="random network on tiny synthetic data (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.small:
        folder = tempfile.mkdtemp(prefix="bench_consensus_")
        net, records, metric, height, width, ks = small_setup(folder)
        source = "synthetic (random weights)"
    else:
        if not args.ckpt:
            parser.error("--ckpt is required (or --small)")
        from src.data.sources import CourseSource
        from src.models.loading import build_from_checkpoint

        net, hparams = build_from_checkpoint(args.ckpt, "net.")
        if not hasattr(net, "embed_and_classify"):
            parser.error(f"{args.ckpt}: not a re-ID checkpoint (task=reid or task=reid_strong)")
        metric, height, width, ks = hparams.get("metric", "euclidean"), args.height, args.width, KS
        records = CourseSource(args.data_root).labelled()
        source = f"{args.data_root} with {args.ckpt}"
    _, val = split_by_identity(records, args.val_ratio, args.split_seed)
    labels = torch.tensor([r.labels for r in val])
    pids = np.array([r.pid for r in val])
    started = time.perf_counter()
    embeddings, plain, flipped = inference(net, val, height, width)
    seconds = time.perf_counter() - started
    rows = [("plain", plain), *consensus_rows("+ flip", flipped, embeddings, metric, ks, pids)]
    if args.ensemble:
        members = [parse_member(spec, height, width) for spec in args.ensemble]
        ensembled = ensemble_probabilities(val, members, None if args.ensemble_only else flipped, num_workers=0)
        label = f"ensemble of {len(members) + (not args.ensemble_only)} (flip)"
        rows += consensus_rows(label, ensembled, embeddings, metric, ks, pids)
    table = []
    for name, probabilities in rows:
        correct = correct_matrix(probabilities, labels)
        low, high = identity_bootstrap(correct, pids)
        table.append([name, f"{100 * correct.mean():.2f}", f"{low:.1f}-{high:.1f}", *(f"{100 * a:.1f}" for a in correct.mean(0))])
    print(f"# attribute accuracy (%) on {len(val)} validation images of {len(set(pids))} identities; {source}; "
          f"{height}x{width}, {metric} distance; inference {seconds:.0f} s")
    print(machine_line(args.threads))
    print(markdown_table(["test-time", "mean", "95% CI (identities resampled)", *HEAD_NAMES], table))


if __name__ == "__main__":
    main()
