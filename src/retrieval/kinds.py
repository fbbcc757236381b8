"""The faiss kinds of a gallery index, their parameters, and their defaults from the gallery size.

- ``flat``: exact search, every vector kept as float32 (``IDMap,Flat``); the ranking of a dense distance sort.
- ``ivf_pq``: inverted lists over ``nlist`` k-means cells, vectors compressed to ``m`` codes of ``nbits``
  (``IVF{nlist},PQ{m}x{nbits}``); a search visits ``nprobe`` cells and re-ranks ``refine`` x k candidates
  with their exact stored embeddings.
- ``hnsw``: a graph of ``m`` links per vector over float32 vectors (``IDMap,HNSW{m}``); a search keeps
  ``ef_search`` candidates.

Every kind works on squared L2 distances; cosine indexes hold unit vectors (``1 - cos = L2^2 / 2``).
A parameter left unset (None) is chosen from the number of images (``resolve_params``); the defaults come
from ``bench/bench_faiss_index.py`` (recall@10 >= 0.95 against exact search, see BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from src.errors import KnownError

if TYPE_CHECKING:  # faiss loads where an index is made or searched, not with this module
    import faiss

KINDS = ("flat", "ivf_pq", "hnsw")
PARAMETERS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "ivf_pq": ("nlist", "m", "nbits", "train_size", "nprobe", "refine"),
    "hnsw": ("m", "ef_construction", "ef_search"),
}
SEARCH_ONLY = ("nprobe", "refine", "ef_search")  # changing these rewrites no faiss file
MAX_EF_SEARCH = 4096


class IndexKindError(KnownError, ValueError):
    """An unknown kind or parameter, or a gallery too small for the kind."""


def use_threads(threads: int) -> int:
    """faiss's OpenMP threads (searches, training, adding), like ``torch_threads`` for torch."""
    import faiss

    faiss.omp_set_num_threads(int(threads))
    return int(threads)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise IndexKindError(f"index.kind={kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def _power_of_two(x: float) -> int:
    return 2 ** max(0, round(math.log2(max(x, 1.0))))


def auto_params(kind: str, num_vectors: int, dim: int) -> dict[str, int]:
    """Defaults for ``num_vectors`` vectors of ``dim`` dimensions."""
    n = max(int(num_vectors), 1)
    if kind == "ivf_pq":
        nlist = max(1, min(_power_of_two(math.sqrt(n)), n // 39))  # >= 39 training points per cell
        train_size = min(n, max(40 * nlist, 10_000))
        nbits = max(1, min(8, int(math.log2(max(train_size // 39, 2))), int(math.log2(n))))
        m = max(d for d in range(1, max(dim // 8, 1) + 1) if dim % d == 0)  # about 8 dimensions per code
        return {"nlist": nlist, "m": m, "nbits": nbits, "train_size": train_size,
                "nprobe": max(1, math.ceil(nlist * 3 / 8)), "refine": 10}
    if kind == "hnsw":  # the beam grows with the gallery: recall@10 >= 0.95 at 100k (64) and 1M (512) in the bench
        return {"m": 32, "ef_construction": 40, "ef_search": min(MAX_EF_SEARCH, 64 * _power_of_two(n / 100_000))}
    return {}


def resolve_params(kind: str, requested: Mapping | None, num_vectors: int, dim: int) -> dict[str, int]:
    """``requested`` (None values = automatic) completed with :func:`auto_params`; unknown names are an error."""
    check_kind(kind)
    requested = {k: v for k, v in (requested or {}).items() if v is not None}
    unknown = sorted(set(requested) - set(PARAMETERS[kind]))
    if unknown:
        raise IndexKindError(f"index.{kind} has no parameter {', '.join(unknown)}; its parameters are: "
                             f"{', '.join(PARAMETERS[kind]) or 'none'}")
    params = {**auto_params(kind, num_vectors, dim), **{k: int(v) for k, v in requested.items()}}
    if kind == "ivf_pq" and dim % params["m"]:
        raise IndexKindError(f"index.ivf_pq.m={params['m']} does not divide the embedding dimension {dim}")
    if kind == "ivf_pq" and num_vectors < max(params["nlist"], 2 ** params["nbits"]):
        raise IndexKindError(f"ivf_pq with nlist={params['nlist']}, nbits={params['nbits']} needs at least "
                             f"{max(params['nlist'], 2 ** params['nbits'])} images, the gallery has {num_vectors}; "
                             "use index.kind=flat")
    bad = [k for k, v in params.items() if v < (0 if k == "refine" else 1)]
    if bad:
        raise IndexKindError(f"index.{kind}: {', '.join(f'{k}={params[k]}' for k in bad)} must be positive")
    return params


def structure(params: Mapping) -> dict:
    """The parameters that shape the faiss file (the others only steer a search)."""
    return {k: v for k, v in params.items() if k not in SEARCH_ONLY}


def factory_string(kind: str, params: Mapping) -> str:
    if kind == "flat":
        return "IDMap,Flat"
    if kind == "hnsw":
        return f"IDMap,HNSW{params['m']}"
    return f"IVF{params['nlist']},PQ{params['m']}x{params['nbits']}"


def new_index(kind: str, params: Mapping, dim: int) -> faiss.Index:
    """An empty faiss index of this kind (ids are the records' ``id`` column)."""
    import faiss

    index = faiss.index_factory(dim, factory_string(kind, params), faiss.METRIC_L2)
    if kind == "ivf_pq":
        ivf = faiss.downcast_index(index)
        ivf.do_polysemous_training = False  # the factory's default; minutes of training for codes we never use
        ivf.cp.verbose = ivf.pq.cp.verbose = False
    if kind == "hnsw":
        hnsw_index(index).hnsw.efConstruction = int(params["ef_construction"])
    return index


def hnsw_index(index: faiss.Index):
    import faiss

    return faiss.downcast_index(faiss.downcast_index(index).index)


def needs_training(kind: str) -> bool:
    return kind == "ivf_pq"


def supports_remove(kind: str) -> bool:
    """hnsw graphs cannot drop vectors: removed images stay as unreachable ids (see ``store``) until a rebuild."""
    return kind != "hnsw"


def search_parameters(kind: str, params: Mapping, k: int, selector=None, selectivity: float = 1.0):
    """faiss search parameters; a filter passing a fraction ``selectivity`` widens the search by 1 / selectivity,
    so that about as many passing candidates are met as without a filter."""
    import faiss

    widen = 1.0 / max(selectivity, 1e-9)
    if kind == "ivf_pq":
        nprobe = min(int(params["nlist"]), math.ceil(int(params["nprobe"]) * widen))
        return faiss.SearchParametersIVF(sel=selector, nprobe=max(1, nprobe))
    if kind == "hnsw":
        ef = min(MAX_EF_SEARCH, max(k, math.ceil(int(params["ef_search"]) * widen)))
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def candidates_per_query(kind: str, params: Mapping, k: int) -> int:
    """How many results to ask faiss for, to keep ``k`` after exact re-ranking (ivf_pq ``refine``)."""
    return k * max(1, int(params.get("refine", 1))) if kind == "ivf_pq" else k


def prepared(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as faiss stores them: float32, unit length for cosine."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        vectors = vectors.copy()
        faiss.normalize_L2(vectors)
    return vectors


def to_distance(squared_l2: np.ndarray, metric: str) -> np.ndarray:
    """faiss's squared L2 -> the project's distance: L2 (euclidean) or ``1 - cos`` (cosine, unit vectors)."""
    if metric == "cosine":
        return squared_l2 / 2
    return np.sqrt(np.maximum(squared_l2, 0))
