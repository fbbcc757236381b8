"""Benchmark: Market-1501-scale ranking evaluation, ours vs torchreid 0.2.5 ``eval_market1501`` (python).

    python bench/bench_rank.py [--small] [--repeats 5] [--ref-repeats 3]

Builds seeded identity-structured features (3,368 queries x 15,913 gallery,
751 ids, 6 cameras, 128-d), one float32 distance matrix shared by every
implementation, runs each implementation in its own process (peak RSS from
ru_maxrss) and checks that the numbers agree.
"""

from __future__ import annotations

import sys

import numpy as np
from _common import (
    HEADERS,
    fmt_row,
    isolated,
    load_torchreid_file,
    machine_line,
    make_features,
    markdown_table,
    median,
    parse_args,
    peak_rss_gib,
    timed,
    workdir,
)

FULL = dict(num_query=3368, num_gallery=15913, num_ids=751, num_cams=6, dim=128)
SMALL = dict(num_query=200, num_gallery=1000, num_ids=60, num_cams=6, dim=32)


def _load(folder):
    labels = dict(np.load(f"{folder}/labels.npz"))
    return labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"]


def run_reference(folder, repeats):
    ref = load_torchreid_file("reid/metrics/rank.py")
    distmat, labels = np.load(f"{folder}/distmat.npy"), _load(folder)
    after = peak_rss_gib()
    times, (cmc, mAP) = timed(lambda: ref.eval_market1501(distmat, *labels, 50), repeats)
    return dict(times=times, cmc=cmc, mAP=float(mAP), rss_after_inputs_gib=after)


def run_ours(folder, repeats):
    from src.metrics.rank import evaluate_rank

    distmat, labels = np.load(f"{folder}/distmat.npy"), _load(folder)
    after = peak_rss_gib()
    times, r = timed(lambda: evaluate_rank(distmat, *labels, max_rank=50), repeats)
    return dict(times=times, cmc=r["cmc"], mAP=r["mAP"], mINP=r["mINP"], rss_after_inputs_gib=after)


def run_ours_features(folder, repeats):
    from src.metrics.rank import evaluate_rank_from_features

    qf, gf, labels = np.load(f"{folder}/qf.npy"), np.load(f"{folder}/gf.npy"), _load(folder)
    after = peak_rss_gib()
    times, r = timed(lambda: evaluate_rank_from_features(qf, gf, *labels, max_rank=50), repeats)
    return dict(times=times, cmc=r["cmc"], mAP=r["mAP"], rss_after_inputs_gib=after)


def build_inputs(folder, size):
    from src.metrics.distance import pairwise_distance

    qf, gf, labels = make_features(**size, seed=0)
    np.save(f"{folder}/qf.npy", qf)
    np.save(f"{folder}/gf.npy", gf)
    np.savez(f"{folder}/labels.npz", **labels)
    np.save(f"{folder}/distmat.npy", pairwise_distance(qf, gf).numpy())
    return {}


def main():
    args = parse_args(__doc__.splitlines()[0], repeats=5, ref_repeats=3)
    size = SMALL if args.small else FULL
    tmp = workdir(args)
    folder = getattr(tmp, "name", tmp)
    isolated(build_inputs, folder, size)

    if load_torchreid_file("reid/metrics/rank.py") is None:
        sys.exit("torchreid is not installed: no reference to compare with")
    ref = isolated(run_reference, folder, args.ref_repeats)
    ours = isolated(run_ours, folder, args.repeats)
    feats = isolated(run_ours_features, folder, args.repeats)

    map_diff = max(abs(ours["mAP"] - ref["mAP"]), abs(feats["mAP"] - ref["mAP"]))
    cmc_diff = max(np.abs(ours["cmc"] - ref["cmc"]).max(), np.abs(feats["cmc"] - ref["cmc"]).max())
    q, g = size["num_query"], size["num_gallery"]
    rows = [
        fmt_row("torchreid 0.2.5 eval_market1501 (python)", "distmat", ref, median(ref)),
        fmt_row("ours: evaluate_rank", "distmat", ours, median(ref)),
        fmt_row("ours: evaluate_rank_from_features (incl. distances)", "features", feats, median(ref)),
    ]
    print(f"## Ranking evaluation: {q:,} queries x {g:,} gallery, {size['num_ids']} ids, "
          f"{size['num_cams']} cameras, {size['dim']}-d\n")
    print(machine_line(ours.get("torch_threads", "?")) + "\n")
    print(markdown_table(HEADERS, rows))
    print(f"\nmAP {ours['mAP']:.6f} (reference {ref['mAP']:.6f}), rank-1 {ours['cmc'][0]:.6f}, "
          f"mINP {ours['mINP']:.6f}; max |mAP diff| {map_diff:.2e}, max |CMC diff| {cmc_diff:.2e}")
    if map_diff > 1e-6 or cmc_diff > 1e-6:
        sys.exit("MISMATCH between ours and the reference")
    print("outputs agree (<= 1e-6)")


if __name__ == "__main__":
    main()
