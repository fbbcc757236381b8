"""Benchmark: the faiss gallery index (flat, ivf_pq, hnsw) beside today's dense search, on synthetic 512-d
identity-structured embeddings at 100k and 1M gallery images.

    python bench/bench_faiss_index.py [--small] [--sizes 100000,1000000] [--hnsw-max 100000] [--queries 1000]
                                      [--single 100] [--workdir DIR]

Embeddings: 20 images per identity, identity centre + camera shift + within-identity spread in a 64-d subspace
of 512-d (re-ID embeddings have a few dozen strong principal directions), plus small isotropic noise. Attributes: independent of
identity; the filter ``upcolor=red,downcolor=blue``
passes 1% of the gallery. Every build and every search runs in a fresh process with 1 torch / faiss thread
(``faiss.omp_set_num_threads(1)``), so peak RSS is that process's.

* times: wall clock and CPU time of the process (``time.process_time``, all its threads; with one thread the
  compute a query needs, whatever else runs on the machine). The speed-up against exact search is taken from
  the CPU times, which a shared CPU does not inflate.
* build: ``src.retrieval.build.index_from_embeddings`` from an embeddings .npy (records parquet, embeddings,
  faiss training and adding, all files written); size on disk of the faiss file and of the whole folder.
* search: ``src.retrieval.search.nearest`` on the loaded index, top 10: single queries (p50 / p95 over
  ``--single`` queries) and one batch of ``--queries``; recall@10 against exact search (the flat kind) and the
  re-ID mAP@10 of the returned lists (same identity = relevant) beside exact search's.
* 1% filter: the same with the attribute filter inside the search (a faiss ``IDSelector``). For hnsw twice: as
  configured (a filter passing <= 20,000 images is searched exactly over their vectors), and forced through the
  graph walk (``exact_below=0``).
* today's dense search: the whole gallery as one float32 tensor, every distance, a full sort per query
  (``iter_distance_chunks`` + ``torch.sort``, as ``src.search`` did before faiss); at 1M a batch is sorted 64
  queries at a time (today's 256 would need ~5 GB) and the 1,000-query time is scaled from the first 256.
* hnsw above ``--hnsw-max`` and every kind at 10M: not run; estimated from the per-vector costs measured at the
  largest size run (labelled *estimated*).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import isolated, machine_line, markdown_table, peak_rss_gib, workdir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM, LATENT, PER_ID, TOP_K = 512, 64, 20, 10
FILTER = "upcolor=red,downcolor=blue"
SMALL = dict(sizes=[4000], queries=40, single=10, hnsw_max=4000, dim=64)


def _threads() -> None:
    import torch

    from src.retrieval.kinds import use_threads

    torch.set_num_threads(1)
    use_threads(1)


# ------------------------------------------------------------------------------------------------ data
def _generator(seed: int, num_ids: int, dim: int):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, LATENT)))[0].T.astype(np.float32)
    centres = rng.standard_normal((num_ids, LATENT), dtype=np.float32)
    cameras = 0.3 * rng.standard_normal((6, LATENT), dtype=np.float32)

    def draw(count: int, rng: np.random.Generator):
        pids = rng.integers(0, num_ids, count)
        z = centres[pids] + cameras[rng.integers(0, 6, count)] + 0.8 * rng.standard_normal((count, LATENT), dtype=np.float32)
        return z @ basis + 0.05 * rng.standard_normal((count, dim), dtype=np.float32), pids

    return draw


def make_data(folder: str, size: int, num_queries: int, dim: int) -> dict:
    """gallery-<size>.npy (written in 100k-row chunks), queries-<size>.npy, and their identities."""
    from src.retrieval.store import write_embeddings

    draw = _generator(0, max(size // PER_ID, 2), dim)
    pids = []

    def chunks():
        for start in range(0, size, 100_000):
            x, p = draw(min(100_000, size - start), np.random.default_rng([1, start]))
            pids.append(p)
            yield x

    write_embeddings(Path(folder) / f"gallery-{size}.npy", chunks(), size, dim)
    queries, query_pids = draw(num_queries, np.random.default_rng(2))
    np.save(Path(folder) / f"queries-{size}.npy", queries)
    np.savez(Path(folder) / f"pids-{size}.npz", gallery=np.concatenate(pids), queries=query_pids)
    return {}


def probabilities(size: int) -> dict[str, np.ndarray]:
    """Confident random predictions; upcolor red and downcolor blue each for 10% of the images (independent)."""
    from src.data.attributes import HEADS

    rng = np.random.default_rng(3)
    out = {}
    for head in HEADS:
        weights = np.ones(head.num_classes)
        special = {"upcolor": "red", "downcolor": "blue"}.get(head.name)
        if special:
            at = head.classes.index(special)
            weights[:] = 0.9 / (head.num_classes - 1)
            weights[at] = 0.1
        classes = rng.choice(head.num_classes, size, p=weights / weights.sum())
        values = np.full((size, head.num_classes), 0.1 / max(head.num_classes - 1, 1), np.float32)
        values[np.arange(size), classes] = 0.9
        out[head.name] = values
    return out


# ------------------------------------------------------------------------------------------------ faiss kinds
def build_kind(folder: str, size: int, kind: str) -> dict:
    from src.retrieval.build import index_from_embeddings

    _threads()
    names = [f"{i:08d}.jpg" for i in range(size)]
    probs = probabilities(size)
    seconds, cpu_seconds, index = _timed(lambda: index_from_embeddings(
        Path(folder) / f"{kind}-{size}", Path(folder) / f"gallery-{size}.npy", names, probs, kind=kind))
    files = {role: index.file(role).stat().st_size for role in ("records", "embeddings", "faiss")}
    return dict(build_s=seconds, build_cpu_s=cpu_seconds, faiss_mb=files["faiss"] / 2**20, folder_mb=sum(files.values()) / 2**20,
                params=index.params, build_rss=peak_rss_gib())


def _latencies(fn, count: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``count`` calls ``fn(i)``."""
    wall, cpu = [], []
    for i in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return wall, cpu


def _timed(fn):
    """(wall s, CPU s, result) of ``fn()``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def _summary(wall: list[float], cpu: list[float]) -> dict:
    return dict(p50_ms=1000 * statistics.median(wall), p95_ms=1000 * float(np.percentile(wall, 95)),
                p50_cpu_ms=1000 * statistics.median(cpu), p95_cpu_ms=1000 * float(np.percentile(cpu, 95)))


def search_kind(folder: str, size: int, kind: str, single: int) -> dict:
    from src.retrieval.filtering import filter_mask, parse_filter
    from src.retrieval.search import nearest
    from src.retrieval.store import load_index

    _threads()
    load_s, _, index = _timed(lambda: load_index(Path(folder) / f"{kind}-{size}"))
    queries = np.load(Path(folder) / f"queries-{size}.npy")
    load_s += _timed(lambda: index.faiss)[0]
    passing = filter_mask(index.attributes, parse_filter(FILTER))
    np.save(Path(folder) / f"passing-{size}.npy", passing)
    out = dict(load_s=load_s, passing=int(passing.sum()))
    variants = {"all": {}, "filter": {"passing": passing}}
    if kind == "hnsw":
        variants["filter_faiss"] = {"passing": passing, "exact_below": 0}
    for name, options in variants.items():
        nearest(index, queries[:1], TOP_K, **options)  # warm: first touches of the mapped files
        one = _latencies(lambda i, options=options: nearest(index, queries[i % len(queries): i % len(queries) + 1], TOP_K,
                                                             **options), single)
        batch_s, batch_cpu_s, found = _timed(lambda options=options: nearest(index, queries, TOP_K, **options))
        np.save(Path(folder) / f"rows-{kind}-{size}-{name}.npy", found.rows)
        out[name] = dict(**_summary(*one), batch_s=batch_s, batch_cpu_s=batch_cpu_s, full=bool((found.rows >= 0).all()))
    out["search_rss"] = peak_rss_gib()
    return out


# ------------------------------------------------------------------------------------------------ today's search
def dense_search(folder: str, size: int, single: int) -> dict:
    import torch

    from src.metrics.distance import iter_distance_chunks
    from src.retrieval.filtering import filter_mask, parse_filter
    from src.retrieval.store import load_index

    _threads()
    gallery = torch.from_numpy(np.load(Path(folder) / f"gallery-{size}.npy"))  # as torch.load of the old .pt index
    queries = torch.from_numpy(np.load(Path(folder) / f"queries-{size}.npy"))
    attributes = load_index(Path(folder) / f"flat-{size}").attributes
    passing = torch.from_numpy(filter_mask(attributes, parse_filter(FILTER)))
    chunk = 256 if size <= 200_000 else 64
    limit = len(queries) if size <= 200_000 else min(len(queries), 256)
    out = {}
    for name, g in (("all", gallery), ("filter", None)):
        rows = torch.arange(size) if g is not None else torch.nonzero(passing).flatten()

        def run(q, g=g, rows=rows):
            g_rows = gallery if g is not None else gallery[rows]  # today: the filtered gallery is gathered per search
            found = []
            for _, block in iter_distance_chunks(q, g_rows, "euclidean", chunk):
                found.append(rows[torch.sort(block, dim=1, stable=True)[1][:, :TOP_K]])
            return torch.cat(found)

        one = _latencies(lambda i: run(queries[i:i + 1]), single)
        batch_s, batch_cpu_s, found = _timed(lambda: run(queries[:limit]))
        np.save(Path(folder) / f"rows-dense-{size}-{name}.npy", found.numpy())
        out[name] = dict(**_summary(*one), batch_s=batch_s * len(queries) / limit,
                         batch_cpu_s=batch_cpu_s * len(queries) / limit, scaled=limit < len(queries), full=True)
    out["search_rss"] = peak_rss_gib()
    return out


# ------------------------------------------------------------------------------------------------ quality
def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top 10 that ``found`` returns."""
    return float(np.mean([len(set(got[got >= 0].tolist()) & set(want[want >= 0].tolist())) / max((want >= 0).sum(), 1)
                          for got, want in zip(found[:, :TOP_K], exact[:, :TOP_K])]))


def identity_map_at_k(found: np.ndarray, query_pids: np.ndarray, gallery_pids: np.ndarray,
                      passing: np.ndarray | None = None) -> float:
    """Re-ID mAP@10 of the returned lists: same identity = relevant, AP normalised by min(relevant images, 10)."""
    candidates = gallery_pids if passing is None else gallery_pids[passing]
    counts = dict(zip(*np.unique(candidates, return_counts=True)))
    aps = []
    for q, got in enumerate(found[:, :TOP_K]):
        relevant = min(int(counts.get(query_pids[q], 0)), TOP_K)
        if not relevant:
            continue
        hits = np.array([r >= 0 and gallery_pids[r] == query_pids[q] for r in got.tolist()], dtype=float)
        aps.append((np.cumsum(hits) / np.arange(1, len(hits) + 1) * hits).sum() / relevant)
    return float(np.mean(aps)) if aps else float("nan")


# ------------------------------------------------------------------------------------------------ main
def parse():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes: a few seconds, for smoke tests")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--kinds", default="flat,ivf_pq,hnsw")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest gallery hnsw is built for")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=100, help="single queries timed for p50/p95")
    parser.add_argument("--no-dense", action="store_true", help="skip today's dense search")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    args.dim = DIM
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.kinds = args.kinds.split(",")
    if args.small:
        for key, value in SMALL.items():
            setattr(args, key, value)
    return args


def fmt(value, digits=1, estimated=False) -> str:
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    return f"~{text} (est.)" if estimated else text


def main():
    args = parse()
    tmp = workdir(args)
    folder = str(tmp) if isinstance(tmp, Path) else tmp.name
    started, start_line = time.perf_counter(), machine_line(1)
    isolated_or_inline = (lambda fn, *a: fn(*a)) if args.small else isolated  # --small: no process per step
    results: dict[tuple[int, str], dict] = {}
    for size in args.sizes:
        isolated_or_inline(make_data, folder, size, args.queries, args.dim)
        for kind in ["flat"] + [k for k in args.kinds if k != "flat"]:
            if kind == "hnsw" and size > args.hnsw_max:
                continue
            build = isolated_or_inline(build_kind, folder, size, kind)
            search = isolated_or_inline(search_kind, folder, size, kind, args.single)
            results[(size, kind)] = {**build, **search}
            print(f"# {size:,} {kind}: built in {build['build_s']:.1f} s ({build['build_cpu_s']:.1f} s CPU), "
                  f"{time.perf_counter() - started:.0f} s so far", file=sys.stderr, flush=True)
        if not args.no_dense:
            results[(size, "dense")] = isolated_or_inline(dense_search, folder, size, args.single)
        pids = np.load(Path(folder) / f"pids-{size}.npz")
        passing = np.load(Path(folder) / f"passing-{size}.npy")
        for kind in [k for k in ("dense", *args.kinds) if (size, k) in results]:
            for variant in ("all", "filter", "filter_faiss"):
                if variant not in results[(size, kind)]:
                    continue
                exact = np.load(Path(folder) / f"rows-flat-{size}-{'all' if variant == 'all' else 'filter'}.npy")
                found = np.load(Path(folder) / f"rows-{kind}-{size}-{variant}.npy")
                results[(size, kind)][variant]["recall"] = recall_at_k(found, exact[:len(found)])
                results[(size, kind)][variant]["map"] = identity_map_at_k(
                    found, pids["queries"], pids["gallery"], None if variant == "all" else passing)
    total_s = time.perf_counter() - started
    print(report(args, results, total_s, start_line))
    if args.workdir:
        (Path(folder) / "results.json").write_text(json.dumps({f"{s}-{k}": v for (s, k), v in results.items()}, indent=1,
                                                              default=str))


def estimates(args, results) -> list[tuple[int, str, dict]]:
    """hnsw above --hnsw-max and the compressed kinds at 10M, from the per-vector costs of the largest size run."""
    from src.retrieval.kinds import of

    out = []
    hnsw_sizes = [s for s in args.sizes if (s, "hnsw") in results]
    targets = [(s, "hnsw") for s in args.sizes if s > args.hnsw_max and hnsw_sizes]
    if not args.small:
        targets += [(10_000_000, kind) for kind in ("ivf_pq", "hnsw") if any((s, kind) in results for s in args.sizes)]
    for size, kind in targets:
        base_size = max(s for s in args.sizes if (s, kind) in results)
        base = results[(base_size, kind)]
        scale = size / base_size
        growth = math.log(size) / math.log(base_size)  # hnsw: insertion and search cost grow with log N
        faiss_scale = scale * (growth if kind == "hnsw" else 1)
        faiss_mb = base["faiss_mb"] * scale
        est = dict(build_s=base["build_s"] * faiss_scale, build_cpu_s=base["build_cpu_s"] * faiss_scale, faiss_mb=faiss_mb,
                   folder_mb=base["folder_mb"] * scale,
                   build_rss=None,
                   search_rss=base["search_rss"] + (faiss_mb - base["faiss_mb"]) / 1024
                   + records_gib_per_image(args, results) * (size - base_size))
        for variant in ("all",):
            b = base[variant]
            latency = scale  # ivf_pq: nprobe a fixed share of the lists
            if kind == "hnsw":  # walks log N steps with a beam of ef_search, which grows with N
                latency = growth * of("hnsw").auto_params(size, args.dim)["ef_search"] / base["params"]["ef_search"]
            est[variant] = {**{key: b[key] * latency for key in ("p50_ms", "p95_ms", "p50_cpu_ms", "p95_cpu_ms", "batch_s",
                                                                   "batch_cpu_s")}, "recall": None, "map": None, "full": None}
        out.append((size, kind, est))
    return out


def records_gib_per_image(args, results) -> float:
    """Search RSS per image besides the faiss index (records table, id maps), from the flat kind's two sizes."""
    sizes = sorted(s for s in args.sizes if (s, "flat") in results)
    if len(sizes) < 2:
        return 0.0
    small, large = (results[(s, "flat")] for s in (sizes[0], sizes[-1]))
    grown = (large["search_rss"] - large["faiss_mb"] / 1024) - (small["search_rss"] - small["faiss_mb"] / 1024)
    return max(grown, 0.0) / (sizes[-1] - sizes[0])


def pair(wall, cpu, digits=1, estimated=False) -> str:
    """``wall / CPU``."""
    return f"{fmt(wall, digits)} / {fmt(cpu, digits)}" + (" (est.)" if estimated else "")


def report(args, results, total_s, start_line: str = "") -> str:
    lines = [f"## faiss gallery index: {args.dim}-d synthetic embeddings, {args.queries:,} queries, top {TOP_K}\n",
             "started " + start_line + "\n" if start_line else "",
             "ended " + machine_line(1) + " | faiss threads=1 (faiss.omp_set_num_threads(1))\n",
             f"whole run {total_s / 60:.1f} min; times are wall / CPU time of the process\n"]
    est = estimates(args, results)
    rows = []
    for (size, kind), r in results.items():
        if kind == "dense":
            rows.append([f"{size:,}", "today's dense (.pt, torch)", "-", fmt(size * args.dim * 4 / 2**20), "-",
                         "-", fmt(r["search_rss"], 2)])
            continue
        rows.append([f"{size:,}", kind, pair(r["build_s"], r["build_cpu_s"]), fmt(r["faiss_mb"]), fmt(r["folder_mb"]),
                     fmt(r["build_rss"], 2), fmt(r["search_rss"], 2)])
    for size, kind, r in est:
        rows.append([f"{size:,}", kind, pair(r["build_s"], r["build_cpu_s"], 0, True), fmt(r["faiss_mb"], 0, True),
                     fmt(r["folder_mb"], 0, True), "-", fmt(r["search_rss"], 1, True)])
    lines.append("### Build and memory\n")
    lines.append(markdown_table(["gallery", "kind", "build s wall / CPU", "faiss file MiB", "index folder MiB",
                                 "peak RSS build GiB", "peak RSS search GiB"], rows))
    for variant, title in (("all", "no filter"), ("filter", f"1% filter ({FILTER})"),
                           ("filter_faiss", "1% filter, hnsw forced through the graph walk (IDSelector, exact_below=0)")):
        rows = []
        for (size, kind), r in list(results.items()) + [((s, k), e) for s, k, e in est]:
            if variant not in r:
                continue
            v = r[variant]
            estimated = (size, kind) not in results
            exact = results.get((size, "flat"), {}).get(variant if variant != "filter_faiss" else "filter")
            speedup = exact["p50_cpu_ms"] / v["p50_cpu_ms"] if exact and v["p50_cpu_ms"] else None
            name = "today's dense" if kind == "dense" else kind
            params = "" if kind in ("dense", "flat") or estimated else " (" + ", ".join(
                f"{k}={r['params'][k]}" for k in ("nlist", "nprobe", "refine", "m", "ef_search") if k in r["params"]) + ")"
            rows.append([f"{size:,}", name + params, pair(v["p50_ms"], v["p50_cpu_ms"], 2, estimated),
                         pair(v["p95_ms"], v["p95_cpu_ms"], 2, estimated),
                         pair(v["batch_s"], v["batch_cpu_s"], 2, estimated) + (" (scaled from 256)" if v.get("scaled") else ""),
                         fmt(speedup, 1) + "x" if speedup else "-",
                         fmt(v.get("recall"), 3), fmt(v.get("map"), 3),
                         "-" if v.get("full") is None else ("yes" if v["full"] else "NO")])
        if rows:
            lines.append(f"\n### Search, {title}\n")
            lines.append(markdown_table(["gallery", "kind", "1 query p50 ms wall / CPU", "1 query p95 ms wall / CPU",
                                         f"{args.queries:,} queries s wall / CPU", "speed-up vs flat (p50 CPU)", "recall@10",
                                         "mAP@10 (identity)", "full top-10"], rows))
    passing = {s: results[(s, "flat")]["passing"] for s in args.sizes if (s, "flat") in results}
    lines.append("\nimages passing the filter: " + ", ".join(f"{p:,} of {s:,}" for s, p in passing.items()))
    if est:
        lines.append("estimated rows (~, est.): build time and file sizes scale with N (hnsw build and latency also "
                     "with log N; its latency with log N x ef_search), ivf_pq latency with N (nprobe a fixed share of "
                     "the lists), search RSS = measured + "
                     "the larger faiss index + the records' RSS per image measured on the flat kind; recall not estimated")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
