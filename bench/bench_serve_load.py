"""Benchmark: the person-search app under concurrent load, on a large synthetic index (localhost only, bounded).

    python bench/bench_serve_load.py [--gallery 100000] [--clients 1 4 16] [--duration 60] [--workers 1]
                                     [--ckpt REID.ckpt] [--kind flat] [--workdir DIR]
    python bench/bench_serve_load.py --small     # 2,000 images, 2 s per step (smoke test)

The index: ``--gallery`` synthetic embeddings (identity-structured, as bench/bench_faiss_index.py; building a
100k-image index from real images is hours of CPU here) of the network's embedding dimension, with random
attribute probabilities, written by ``index_from_embeddings`` with a real re-ID checkpoint in its manifest, so a
photo query runs the whole path: upload, checks, decode + resize to the index's 128x64, the network, the faiss
search, the JSON answer. Without ``--ckpt`` the checkpoint is the strong model (StrongReidNet, EfficientNet-Lite0)
with random weights: the same cost per image as a trained one.

The server is ``python -m src.serve`` (a subprocess on 127.0.0.1, ``--workers`` uvicorn processes, 1 torch thread
each). For photo queries (``POST /api/search/image``, one 128x64 JPEG, top 20) and description queries
(``GET /api/search/description``, 2-3 attributes, top 20), each client count runs ``--duration`` seconds with that
many client threads, each sending its next request as soon as the last is answered: requests/s, p50/p95/p99
latency, errors (any status but 200, or a failed connection), and the server's RSS (all its processes) before and
after each step.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import REPO, machine_line, markdown_table

sys.path.insert(0, str(REPO))

DESCRIPTIONS = ("gender=female,upcolor=red", "upcolor=black,downcolor=blue,backpack=yes", "gender=male,hat=yes")


def random_strong_checkpoint(path: Path) -> Path:
    import torch

    config = {"_target_": "src.models.strong.StrongReidNet", "num_identities": 16,
              "backbone": {"_target_": "src.models.backbones.efficientnet_lite", "variant": "lite0", "pretrained": False}}
    from hydra.utils import instantiate

    torch.manual_seed(0)
    net = instantiate(config)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"net": config, "metric": "cosine"}}, path)
    return path


def build(folder: Path, size: int, ckpt: Path, kind: str) -> Path:
    import torch

    from src.data.attributes import HEADS
    from src.data.records import file_digest
    from src.models.loading import load_network
    from src.retrieval.build import index_from_embeddings

    net, contract = load_network(ckpt)
    with torch.inference_mode():
        dim = net.embed_and_classify(torch.rand(1, 3, 128, 64))[0].shape[1]
    rng = np.random.default_rng(0)
    ids = max(size // 20, 2)
    basis = np.linalg.qr(rng.standard_normal((dim, 64)))[0].T
    centres = rng.standard_normal((ids, 64))
    pids = rng.integers(0, ids, size)
    embeddings = np.empty((size, dim), np.float32)
    for start in range(0, size, 50_000):
        part = pids[start:start + 50_000]
        embeddings[start:start + len(part)] = ((centres[part] + 0.4 * rng.standard_normal((len(part), 64))) @ basis
                                               + 0.02 * rng.standard_normal((len(part), dim)))
    probabilities = {h.name: rng.dirichlet(np.ones(h.num_classes), size).astype(np.float32) for h in HEADS}
    (folder / "gallery").mkdir(parents=True, exist_ok=True)
    index_from_embeddings(folder / "index", embeddings, [f"{p:05d}_c1s1_{i:07d}_00.jpg" for i, p in enumerate(pids)],
                          probabilities, kind=kind, metric=contract.metric, checkpoint=str(ckpt),
                          checkpoint_sha256=file_digest(ckpt), height=128, width=64, gallery=str(folder / "gallery"))
    return folder / "index"


def query_jpeg() -> bytes:
    from PIL import Image

    samples = REPO.parent / "shared/data/market1501-samples"
    if samples.is_dir():
        image = Image.open(sorted(samples.iterdir())[0]).convert("RGB").resize((64, 128))
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (uvicorn's workers), from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(c) for c in children.read().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total / 1024


def cpu_breakdown(index: Path, jpeg: bytes, repeats: int) -> str:
    """CPU time (this process, 1 thread) of one photo query's parts, in-process: what a request costs without
    the wait for a CPU share, and so what bounds the latency on a machine with free cores."""
    import torch

    from src.serving.engine import Engine

    torch.set_num_threads(1)
    engine = Engine(index)
    parts = {"decode + network": [], "faiss search + exclusion": [], "description (3 attributes)": []}
    for i in range(repeats + 1):
        started = time.process_time()
        q, _, served = engine.embed(jpeg)
        embedded = time.process_time()
        engine.rank(served, q, [], 20)
        ranked = time.process_time()
        engine.search_description(DESCRIPTIONS[1], 20)
        if i:  # the first pays lazy initialisations
            parts["decode + network"].append(embedded - started)
            parts["faiss search + exclusion"].append(ranked - embedded)
            parts["description (3 attributes)"].append(time.process_time() - ranked)
    return ", ".join(f"{name} {1000 * float(np.median(v)):.0f} ms" for name, v in parts.items())


def load_step(url: str, clients: int, duration: float, request) -> dict:
    import httpx

    latencies, errors, stop = [], [0], threading.Event()
    lock = threading.Lock()

    def client(number: int):
        with httpx.Client(base_url=url, timeout=30) as http:
            count = 0
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    ok = request(http, number + count).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                count += 1
                with lock:
                    if ok and not stop.is_set():
                        latencies.append(elapsed)
                    elif not ok:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join(60)
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "rps": len(ms) / elapsed, "errors": errors[0],
            **{f"p{q}": float(np.percentile(ms, q)) if len(ms) else float("nan") for q in (50, 95, 99)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per (query kind, client count)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--ckpt", help="a re-ID checkpoint (default: the strong model with random weights)")
    parser.add_argument("--kind", default="flat", choices=("flat", "hnsw", "ivf_pq"))
    parser.add_argument("--workdir", help="keeps the index between runs (default: a temporary folder)")
    parser.add_argument("--small", action="store_true", help="2,000 images, 2 s per step, 1 and 2 clients")
    args = parser.parse_args()
    if args.small:
        args.gallery, args.duration, args.clients = 2_000, 2.0, [1, 2]
    folder = Path(args.workdir or tempfile.mkdtemp(prefix="bench_serve_"))
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = Path(args.ckpt) if args.ckpt else random_strong_checkpoint(folder / "strong_random.ckpt")
    index = folder / "index"
    if not (index / "manifest.json").is_file():
        started = time.perf_counter()
        build(folder, args.gallery, ckpt, args.kind)
        print(f"# built a {args.gallery}-image {args.kind} index in {time.perf_counter() - started:.0f} s", flush=True)
    import httpx

    from src.serving.launch import running_server

    breakdown = cpu_breakdown(index, query_jpeg(), 3 if args.small else 20)
    print(f"# CPU per query in-process (median, 1 thread): {breakdown}", flush=True)

    started = time.perf_counter()
    with running_server([f"index={index}", f"workers={args.workers}", "torch_threads=1"], folder / "server.log",
                        timeout=900) as (url, server):
        print(f"# server up in {time.perf_counter() - started:.0f} s", flush=True)
        jpeg = query_jpeg()
        kinds = {
            "photo 128x64": lambda http, i: http.post("/api/search/image", files={"file": ("q.jpg", jpeg, "image/jpeg")},
                                                      data={"top_k": "20"}),
            "description": lambda http, i: http.get("/api/search/description",
                                                    params={"description": DESCRIPTIONS[i % len(DESCRIPTIONS)], "top_k": 20}),
        }
        with httpx.Client(base_url=url, timeout=60) as http:  # warm-up: first requests pay lazy initialisations
            for name, request in kinds.items():
                for i in range(3):
                    assert request(http, i).status_code == 200, name
        rows = []
        for name, request in kinds.items():
            for clients in args.clients:
                before = tree_rss_mib(server.pid)
                step = load_step(url, clients, args.duration, request)
                after = tree_rss_mib(server.pid)
                rows.append([name, clients, step["requests"], f"{step['rps']:.1f}", f"{step['p50']:.0f}",
                             f"{step['p95']:.0f}", f"{step['p99']:.0f}", step["errors"], f"{before:.0f}", f"{after:.0f}",
                             f"{100 * (after - before) / before:+.1f}"])
                print(f"# {name}, {clients} clients: {step['rps']:.1f} req/s, p95 {step['p95']:.0f} ms", flush=True)
    print(f"# the app under load: {args.gallery} images ({args.kind}), {args.workers} worker(s) x 1 torch thread, "
          f"{args.duration:.0f} s per row, top 20; checkpoint {ckpt.name}")
    print(f"# CPU per query in-process (median, 1 thread): {breakdown}")
    print(machine_line(1))
    print(markdown_table(["query", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                          "RSS start MiB", "RSS end MiB", "RSS growth %"], rows))


if __name__ == "__main__":
    main()
