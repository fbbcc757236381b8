"""Benchmark: large-gallery evaluation (5,000 queries x 100,000 gallery, 512-d), chunked vs dense.

    python bench/bench_large_gallery.py [--small] [--repeats 3] [--ref-repeats 1] [--ref-queries 250]

* ours, chunked: ``evaluate_rank_from_features`` -- never holds the Q x G matrix.
* dense: ``pairwise_distance`` for the full Q x G float32 matrix (2 GB here),
  then ``evaluate_rank`` on it.
* torchreid ``eval_market1501`` on the full matrix would need argsort indices
  (int64), gathered pids (int64) and a match matrix (int32) on top of the
  distances: >= 24 bytes per entry, ~12 GB here, so it is *estimated*, not run.
  It is run on the first ``--ref-queries`` queries instead, to check that the
  numbers agree and to extrapolate its time linearly in the number of queries.
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

FULL = dict(num_query=5000, num_gallery=100_000, num_ids=10_000, num_cams=6, dim=512, noise=1.8)
SMALL = dict(num_query=200, num_gallery=4000, num_ids=400, num_cams=6, dim=64, noise=1.0)


def build_inputs(folder, size):
    qf, gf, labels = make_features(**size, seed=0)
    np.save(f"{folder}/qf.npy", qf)
    np.save(f"{folder}/gf.npy", gf)
    np.savez(f"{folder}/labels.npz", **labels)
    return {}


def _inputs(folder):
    lab = dict(np.load(f"{folder}/labels.npz"))
    labels = lab["q_pids"], lab["g_pids"], lab["q_camids"], lab["g_camids"]
    return np.load(f"{folder}/qf.npy"), np.load(f"{folder}/gf.npy"), labels


def run_chunked(folder, repeats):
    from src.metrics.rank import evaluate_rank_from_features

    qf, gf, labels = _inputs(folder)
    after = peak_rss_gib()
    times, r = timed(lambda: evaluate_rank_from_features(qf, gf, *labels), repeats)
    return dict(times=times, mAP=r["mAP"], cmc=r["cmc"], mINP=r["mINP"], rss_after_inputs_gib=after)


def run_dense(folder, repeats):
    from src.metrics.distance import pairwise_distance
    from src.metrics.rank import evaluate_rank

    qf, gf, labels = _inputs(folder)
    after = peak_rss_gib()

    def dense():
        distmat = pairwise_distance(qf, gf).numpy()
        return evaluate_rank(distmat, *labels)

    times, r = timed(dense, repeats)
    return dict(times=times, mAP=r["mAP"], cmc=r["cmc"], rss_after_inputs_gib=after)


def run_reference_subset(folder, repeats, num):
    from src.metrics.distance import pairwise_distance
    from src.metrics.rank import evaluate_rank

    ref = load_torchreid_file("reid/metrics/rank.py")
    qf, gf, (qp, gp, qc, gc) = _inputs(folder)
    distmat = pairwise_distance(qf[:num], gf).numpy()
    after = peak_rss_gib()
    times, (cmc, mAP) = timed(lambda: ref.eval_market1501(distmat, qp[:num], gp, qc[:num], gc, 50), repeats)
    ours = evaluate_rank(distmat, qp[:num], gp, qc[:num], gc)
    return dict(times=times, rss_after_inputs_gib=after, mAP_diff=abs(ours["mAP"] - mAP),
                cmc_diff=float(np.abs(ours["cmc"] - cmc).max()))


def main():
    args = parse_args(__doc__.splitlines()[0], repeats=3, ref_repeats=1, ref_queries=250)
    size = SMALL if args.small else FULL
    q, g, dim = size["num_query"], size["num_gallery"], size["dim"]
    ref_queries = min(args.ref_queries, q)
    tmp = workdir(args)
    folder = getattr(tmp, "name", tmp)
    isolated(build_inputs, folder, size)

    chunked = isolated(run_chunked, folder, args.repeats)
    dense = isolated(run_dense, folder, args.ref_repeats)
    have_ref = load_torchreid_file("reid/metrics/rank.py") is not None
    subset = isolated(run_reference_subset, folder, args.ref_repeats, ref_queries) if have_ref else None

    matrix_gib = q * g * 4 / 2**30
    scaled = median(subset) * q / ref_queries if subset else None
    rows = [
        fmt_row("ours: evaluate_rank_from_features (chunked)", "features", chunked, scaled),
        fmt_row("dense: pairwise_distance (Q x G) + evaluate_rank", "features", dense, scaled),
    ]
    if subset:
        rows.append(["torchreid eval_market1501 on the dense matrix (NOT run: estimated)", "features",
                     f"~{scaled:.0f} (extrapolated from {ref_queries} queries)", "-", "-", "1.0x",
                     f"~{6 * matrix_gib + chunked['rss_after_inputs_gib']:.1f} (estimated)", "-"])
    print(f"## Large gallery: {q:,} queries x {g:,} gallery, {dim}-d, {size['num_ids']:,} ids\n")
    print(machine_line(chunked.get("torch_threads", "?")) + "\n")
    print(markdown_table(HEADERS, rows))
    print(f"\nfull distance matrix alone: {matrix_gib:.2f} GiB float32; torchreid-style dense evaluation adds "
          f"argsort int64 + gathered pids int64 + matches int32 = {matrix_gib * 5:.1f} GiB more")
    diff = abs(chunked["mAP"] - dense["mAP"])
    print(f"mAP {chunked['mAP']:.6f}, rank-1 {chunked['cmc'][0]:.6f}, mINP {chunked['mINP']:.6f}; "
          f"|chunked - dense| mAP diff {diff:.2e}")
    if subset:
        print(f"first {ref_queries} queries vs torchreid: |mAP diff| {subset['mAP_diff']:.2e}, "
              f"max |CMC diff| {subset['cmc_diff']:.2e} (reference took {median(subset):.1f} s for them, "
              f"peak RSS {subset['peak_rss_gib']:.2f} GiB)")
    if diff > 1e-6 or (subset and max(subset["mAP_diff"], subset["cmc_diff"]) > 1e-6):
        sys.exit("MISMATCH")
    print("outputs agree (<= 1e-6)")


if __name__ == "__main__":
    main()
