"""The faiss kinds of a gallery index as small classes behind one interface (``Kind``; ``of(name)`` is the kind a
manifest or ``index.kind`` names): their parameters, defaults from the gallery size, faiss objects and searches.

- ``flat``: exact search, every vector kept as float32 (``IDMap,Flat``); the ranking of a dense distance sort.
- ``ivf_pq``: inverted lists over ``nlist`` k-means cells, vectors compressed to ``m`` codes of ``nbits``
  (``IVF{nlist},PQ{m}x{nbits}``); a search visits ``nprobe`` cells and re-ranks ``refine`` x k candidates
  with their exact stored embeddings.
- ``hnsw``: a graph of ``m`` links per vector over float32 vectors (``IDMap,HNSW{m}``); a search keeps
  ``ef_search`` candidates.

Every kind works on squared L2 distances; cosine indexes hold unit vectors (``1 - cos = L2^2 / 2``).
A parameter left unset (None) is chosen from the number of images (``Kind.resolve``); the defaults come
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

SEARCH_ONLY = ("nprobe", "refine", "ef_search")  # changing these rewrites no faiss file
MAX_EF_SEARCH = 4096


class IndexKindError(KnownError, ValueError):
    """An unknown kind or parameter, or a gallery too small for the kind."""


def use_threads(threads: int) -> int:
    """faiss's OpenMP threads (searches, training, adding), like ``torch_threads`` for torch."""
    import faiss

    faiss.omp_set_num_threads(int(threads))
    return int(threads)


def _power_of_two(x: float) -> int:
    return 2 ** max(0, round(math.log2(max(x, 1.0))))


class Kind:
    """One faiss kind behind the interface that builds, updates and searches use; ``flat`` itself."""

    name, parameters, factory_format = "flat", (), "IDMap,Flat"
    trains = False  # the faiss index is trained on a sample before vectors are added
    removes = True  # removed images can be deleted from the faiss file (else: tombstones until a rebuild)
    keeps_vectors = True  # the faiss index holds the exact vectors (else they are read from the embeddings file)
    exact_when_filtered = False  # a filter passing few images is searched exactly (a graph walk would miss them)
    refines = False  # ``refine`` x k candidates are re-scored with their exact stored embeddings

    def auto_params(self, num_vectors: int, dim: int) -> dict[str, int]:
        """Defaults for ``num_vectors`` vectors of ``dim`` dimensions."""
        return {}

    def resolve(self, requested: Mapping | None, num_vectors: int, dim: int) -> dict[str, int]:
        """``requested`` (None values = automatic) completed with ``auto_params``; unknown names are an error."""
        requested = {k: v for k, v in (requested or {}).items() if v is not None}
        unknown = sorted(set(requested) - set(self.parameters))
        if unknown:
            raise IndexKindError(f"index.{self.name} has no parameter {', '.join(unknown)}; its parameters are: "
                                 f"{', '.join(self.parameters) or 'none'}")
        params = {**self.auto_params(max(int(num_vectors), 1), dim), **{k: int(v) for k, v in requested.items()}}
        self.check(params, num_vectors, dim)
        bad = [k for k, v in params.items() if v < (0 if k == "refine" else 1)]
        if bad:
            raise IndexKindError(f"index.{self.name}: {', '.join(f'{k}={params[k]}' for k in bad)} must be positive")
        return params

    def check(self, params: dict, num_vectors: int, dim: int) -> None:
        """Parameters the gallery cannot satisfy."""

    def factory(self, params: Mapping) -> str:
        return self.factory_format.format(**params)

    def new_index(self, params: Mapping, dim: int) -> faiss.Index:
        """An empty faiss index of this kind (ids are the records' ``id`` column)."""
        import faiss

        return faiss.index_factory(dim, self.factory(params), faiss.METRIC_L2)

    def search_parameters(self, params: Mapping, k: int, selector=None, selectivity: float = 1.0):
        """faiss search parameters; a filter passing a fraction ``selectivity`` widens the search by 1 / selectivity,
        so that about as many passing candidates are met as without a filter."""
        import faiss

        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def rescores(self, params: Mapping) -> bool:
        """Whether faiss's approximate distances are replaced by exact ones."""
        return self.refines and int(params.get("refine", 0)) > 0

    def candidates(self, params: Mapping, k: int) -> int:
        """How many results to ask faiss for, to keep ``k`` after exact re-scoring."""
        return k * max(1, int(params.get("refine", 1))) if self.rescores(params) else k


class IvfPq(Kind):
    name, parameters = "ivf_pq", ("nlist", "m", "nbits", "train_size", "nprobe", "refine")
    factory_format, trains, keeps_vectors, refines = "IVF{nlist},PQ{m}x{nbits}", True, False, True

    def auto_params(self, n: int, dim: int) -> dict[str, int]:
        nlist = max(1, min(_power_of_two(math.sqrt(n)), n // 39))  # >= 39 training points per cell
        train_size = min(n, max(40 * nlist, 10_000))
        nbits = max(1, min(8, int(math.log2(max(train_size // 39, 2))), int(math.log2(n))))
        m = max(d for d in range(1, max(dim // 8, 1) + 1) if dim % d == 0)  # about 8 dimensions per code
        return {"nlist": nlist, "m": m, "nbits": nbits, "train_size": train_size,
                "nprobe": max(1, math.ceil(nlist * 3 / 8)), "refine": 10}

    def check(self, params: dict, num_vectors: int, dim: int) -> None:
        if dim % params["m"]:
            raise IndexKindError(f"index.ivf_pq.m={params['m']} does not divide the embedding dimension {dim}")
        if num_vectors < max(params["nlist"], 2 ** params["nbits"]):
            raise IndexKindError(f"ivf_pq with nlist={params['nlist']}, nbits={params['nbits']} needs at least "
                                 f"{max(params['nlist'], 2 ** params['nbits'])} images, the gallery has {num_vectors}; "
                                 "use index.kind=flat")

    def new_index(self, params: Mapping, dim: int) -> faiss.Index:
        import faiss

        index = super().new_index(params, dim)
        ivf = faiss.downcast_index(index)
        ivf.do_polysemous_training = False  # the factory's default; minutes of training for codes we never use
        ivf.cp.verbose = ivf.pq.cp.verbose = False
        return index

    def search_parameters(self, params: Mapping, k: int, selector=None, selectivity: float = 1.0):
        import faiss

        nprobe = min(int(params["nlist"]), math.ceil(int(params["nprobe"]) * (1.0 / max(selectivity, 1e-9))))
        return faiss.SearchParametersIVF(sel=selector, nprobe=max(1, nprobe))


class Hnsw(Kind):
    """A graph: it cannot drop vectors, so removed images stay as unreachable ids (see ``store``) until a rebuild."""

    name, parameters, factory_format = "hnsw", ("m", "ef_construction", "ef_search"), "IDMap,HNSW{m}"
    removes, exact_when_filtered = False, True

    def auto_params(self, n: int, dim: int) -> dict[str, int]:
        # the beam grows with the gallery: recall@10 >= 0.95 at 100k (64) and 1M (512) in the bench
        return {"m": 32, "ef_construction": 40, "ef_search": min(MAX_EF_SEARCH, 64 * _power_of_two(n / 100_000))}

    def new_index(self, params: Mapping, dim: int) -> faiss.Index:
        index = super().new_index(params, dim)
        hnsw_index(index).hnsw.efConstruction = int(params["ef_construction"])
        return index

    def search_parameters(self, params: Mapping, k: int, selector=None, selectivity: float = 1.0):
        import faiss

        ef = min(MAX_EF_SEARCH, max(k, math.ceil(int(params["ef_search"]) * (1.0 / max(selectivity, 1e-9)))))
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))


KINDS: dict[str, Kind] = {kind.name: kind for kind in (Kind(), IvfPq(), Hnsw())}


def of(name: str) -> Kind:
    """The kind an index's manifest or ``index.kind`` names."""
    if name not in KINDS:
        raise IndexKindError(f"index.kind={name!r}: expected one of {', '.join(KINDS)}")
    return KINDS[name]


def structure(params: Mapping) -> dict:
    """The parameters that shape the faiss file (the others only steer a search)."""
    return {k: v for k, v in params.items() if k not in SEARCH_ONLY}


def hnsw_index(index: faiss.Index):
    import faiss

    return faiss.downcast_index(faiss.downcast_index(index).index)


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
