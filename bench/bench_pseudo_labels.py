"""Benchmark (quality and cost): one clustering round of ``data.unlabelled`` with a trained strong re-ID network.

    python bench/bench_pseudo_labels.py --ckpt STRONG_CKPT [--data-root DIR] [--height 128 --width 64]
        [--eps 0.5,0.6,0.7] [--k1 30 --k2 6 --min-samples 4] [--threads 1]
    python bench/bench_pseudo_labels.py --small      # random-weight network on tiny synthetic data (smoke test)

The same code as a training round (``src.callbacks.pseudo_labels``): the datamodule reads ``test/`` + ``queries/``
(unreadable skipped, each content once, copies of labelled images left out) and pre-decodes them; the network
embeds them (flip TTA with --flip); the k-reciprocal Jaccard graph (``jaccard_graph``, bounded memory) is built once at the
largest eps and DBSCAN runs for each eps. The validation split's images (120 identities on the course data, known)
are clustered the same way: pairwise precision / recall / F and the number of clusters against the true
identities, the honest measure of what the unlabelled clusters are worth. Prints the cost of each step and the
peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch
from _common import REPO, machine_line, markdown_table, peak_rss_gib

sys.path.insert(0, str(REPO))

from src.config import compose_config  # noqa: E402
from src.metrics.clustering import pairwise_scores  # noqa: E402
from src.metrics.rerank import jaccard_graph  # noqa: E402


def clusters_per_eps(embeddings, metric: str, k1: int, k2: int, eps_values, min_samples: int) -> tuple[dict, float, float]:
    from sklearn.cluster import DBSCAN

    started = time.perf_counter()
    graph = jaccard_graph(embeddings, metric, k1=k1, k2=k2, max_distance=max(eps_values))
    graph_s = time.perf_counter() - started
    started = time.perf_counter()
    labels = {eps: DBSCAN(eps=eps, min_samples=min(min_samples, len(embeddings)), metric="precomputed").fit_predict(graph)
              for eps in eps_values}
    return labels, graph_s, (time.perf_counter() - started) / len(eps_values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a task=reid_strong checkpoint")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared/data/market1501-course"))
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--eps", default="0.5,0.6,0.7")
    parser.add_argument("--k1", default="30", help="one or more, comma-separated")
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--min-samples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flip", action="store_true", help="flip TTA for the embeddings (callbacks.pseudo_labels.flip)")
    parser.add_argument("--small", action="store_true", help="random network on tiny synthetic data (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    eps_values = [float(v) for v in args.eps.split(",")]
    from hydra.utils import instantiate

    from src.models.loading import build_from_checkpoint

    if args.small:
        overrides = ["data.source.num_train_ids=12", "data.source.num_test_ids=6", "data.num_workers=0",
                     "data.batch_size=16"]  # P=4 identities x K=4: the 10 training identities fit (data.batch_size check)
        output = tempfile.mkdtemp(prefix="bench_pseudo_")
        from src.models.backbones import efficientnet_lite
        from src.models.strong import StrongReidNet

        net = StrongReidNet(efficientnet_lite("lite0", pretrained=False), num_identities=8)
        metric, source, cache = "cosine", "synthetic (random weights)", output
    else:
        if not args.ckpt:
            parser.error("--ckpt is required (or --small)")
        overrides = ["data=market_course", f"data.root={args.data_root}", "data.num_workers=1"]
        net, hparams = build_from_checkpoint(args.ckpt, "net.")
        metric, source, cache = hparams.get("metric", "cosine"), args.ckpt, None
        output = tempfile.mkdtemp(prefix="bench_pseudo_")
    cfg = compose_config("train", ["task=reid_strong", *overrides, f"data.height={args.height}", f"data.width={args.width}",
                                   "data.unlabelled=[test,queries]"], output, cache)
    started = time.perf_counter()
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    read_s = time.perf_counter() - started
    rounds = instantiate(cfg.callbacks.pseudo_labels, flip=args.flip)  # only its embedding step is used here
    module = SimpleNamespace(net=net.eval())
    timings = {"read + decode (labelled, unlabelled, val)": read_s}
    started = time.perf_counter()
    unlabelled, _ = rounds._embed(module, _dataset(datamodule), "embedding unlabelled")
    timings[f"embed {len(unlabelled)} unlabelled images"] = time.perf_counter() - started
    started = time.perf_counter()
    val, _ = rounds._embed(module, datamodule.val_set, "embedding val")
    timings[f"embed {len(val)} val images"] = time.perf_counter() - started
    pids = np.array([r.pid for r in datamodule.val_records])
    rows = []
    for k1 in (int(v) for v in args.k1.split(",")):
        val_labels, val_graph_s, _ = clusters_per_eps(val, metric, k1, args.k2, eps_values, args.min_samples)
        unlabelled_labels, graph_s, dbscan_s = clusters_per_eps(unlabelled, metric, k1, args.k2, eps_values, args.min_samples)
        timings[f"Jaccard graph, {len(unlabelled)} images (k1={k1}, k2={args.k2})"] = graph_s
        timings[f"DBSCAN on it (per eps, k1={k1})"] = dbscan_s
        timings[f"Jaccard graph, {len(val)} val images (k1={k1})"] = val_graph_s
        for eps in eps_values:
            scores = pairwise_scores(pids, val_labels[eps])
            labels = unlabelled_labels[eps]
            sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.array([0])
            rows.append([k1, eps, f"{scores['clusters']} / {scores['identities']}", f"{100 * scores['pairwise_precision']:.1f}",
                         f"{100 * scores['pairwise_recall']:.1f}", f"{100 * scores['pairwise_f']:.1f}", scores["outliers"],
                         int(labels.max(initial=-1)) + 1, int((labels < 0).sum()), f"{np.median(sizes):.0f}", int(sizes.max())])
    print(f"# one clustering round: {source}, {args.height}x{args.width}, metric {metric}, k1={args.k1} k2={args.k2} "
          f"min_samples={args.min_samples}, flip TTA {'on' if args.flip else 'off'}")
    print(f"# {machine_line(args.threads)}")
    print(markdown_table(["k1", "eps", "val clusters / identities", "val pair precision %", "val pair recall %", "val pair F %",
                          "val outliers", "unlabelled clusters", "unlabelled outliers", "median size", "largest"], rows))
    print()
    print(markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]))
    print(f"\npeak RSS {peak_rss_gib():.2f} GiB")


def _dataset(datamodule):
    from src.data.datasets import ImageDataset

    pseudo = datamodule.pseudo
    return ImageDataset(pseudo.all_records, datamodule.height, datamodule.width, None, pseudo.cache)


if __name__ == "__main__":
    main()
