"""Benchmark: k-reciprocal re-ranking, ours vs torchreid 0.2.5 ``reid/utils/rerank.py``.

    python bench/bench_rerank.py [--small] [--repeats 3] [--ref-repeats 1]

Same inputs for both: float32 query-gallery, query-query and gallery-gallery
euclidean distance matrices of seeded identity-structured features (Market
scale: 3,368 x 15,913, 751 ids, 6 cameras, 128-d). Each implementation runs in
its own process (peak RSS from ru_maxrss; the inputs alone are ~1.3 GB at full
size and are included). At full size the reference needs ~9 GB and ~100 s, so
it runs once by default (``--ref-repeats 1``).
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
SMALL = dict(num_query=150, num_gallery=700, num_ids=50, num_cams=6, dim=32)


def build_inputs(folder, size):
    from src.metrics.distance import pairwise_distance

    qf, gf, labels = make_features(**size, seed=0)
    np.save(f"{folder}/qf.npy", qf)
    np.save(f"{folder}/gf.npy", gf)
    np.savez(f"{folder}/labels.npz", **labels)
    for name, (a, b) in {"qg": (qf, gf), "qq": (qf, qf), "gg": (gf, gf)}.items():
        np.save(f"{folder}/{name}.npy", pairwise_distance(a, b).numpy())
    return {}


def _matrices(folder):
    return [np.load(f"{folder}/{name}.npy") for name in ("qg", "qq", "gg")]


def run_reference(folder, repeats):
    ref = load_torchreid_file("reid/utils/rerank.py")
    mats = _matrices(folder)
    after = peak_rss_gib()
    times, out = timed(lambda: ref.re_ranking(*mats), repeats)
    np.save(f"{folder}/out_reference.npy", out)
    return dict(times=times, rss_after_inputs_gib=after)


def run_ours(folder, repeats):
    from src.metrics.rerank import re_ranking

    mats = _matrices(folder)
    after = peak_rss_gib()
    times, out = timed(lambda: re_ranking(*mats), repeats)
    np.save(f"{folder}/out_ours.npy", out)
    return dict(times=times, rss_after_inputs_gib=after)


def run_ours_features(folder, repeats):
    from src.metrics.rerank import re_ranking_from_features

    qf, gf = np.load(f"{folder}/qf.npy"), np.load(f"{folder}/gf.npy")
    after = peak_rss_gib()
    times, out = timed(lambda: re_ranking_from_features(qf, gf), repeats)
    np.save(f"{folder}/out_features.npy", out.numpy())
    return dict(times=times, rss_after_inputs_gib=after)


def compare(folder):
    from src.metrics.rank import evaluate_rank

    labels = dict(np.load(f"{folder}/labels.npz"))
    lab = labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"]
    ref = np.load(f"{folder}/out_reference.npy")
    result = {"mAP_before": evaluate_rank(np.load(f"{folder}/qg.npy"), *lab)["mAP"],
              "mAP_after": evaluate_rank(ref, *lab)["mAP"]}
    for name in ("ours", "features"):
        out = np.load(f"{folder}/out_{name}.npy")
        result[f"diff_{name}"] = float(np.abs(out - ref).max())
        result[f"mAP_{name}"] = evaluate_rank(out, *lab)["mAP"]
    return result


def main():
    args = parse_args(__doc__.splitlines()[0], repeats=3, ref_repeats=1)
    size = SMALL if args.small else FULL
    if load_torchreid_file("reid/utils/rerank.py") is None:
        sys.exit("torchreid is not installed: no reference to compare with")
    tmp = workdir(args)
    folder = getattr(tmp, "name", tmp)
    isolated(build_inputs, folder, size)
    ref = isolated(run_reference, folder, args.ref_repeats)
    ours = isolated(run_ours, folder, args.repeats)
    feats = isolated(run_ours_features, folder, args.repeats)
    check = isolated(compare, folder)

    rows = [
        fmt_row("torchreid 0.2.5 re_ranking (numpy)", "3 distance matrices", ref, median(ref)),
        fmt_row("ours: re_ranking", "3 distance matrices", ours, median(ref)),
        fmt_row("ours: re_ranking_from_features", "features", feats, median(ref)),
    ]
    q, g = size["num_query"], size["num_gallery"]
    print(f"## k-reciprocal re-ranking: {q:,} queries x {g:,} gallery (k1=20, k2=6, lambda=0.3)\n")
    print(machine_line(ours.get("torch_threads", "?")) + "\n")
    print(markdown_table(HEADERS, rows))
    print(f"\nmax |ours - reference| = {check['diff_ours']:.2e}; "
          f"max |from_features - reference| = {check['diff_features']:.2e}")
    print(f"mAP before re-ranking {check['mAP_before']:.4f}, after: reference {check['mAP_after']:.6f}, "
          f"ours {check['mAP_ours']:.6f}, from_features {check['mAP_features']:.6f}")
    if check["diff_ours"] > 1e-4 or check["diff_features"] > 1e-4:
        sys.exit("MISMATCH between ours and the reference (> 1e-4)")
    print("outputs agree (<= 1e-4)")


if __name__ == "__main__":
    main()
