"""Search a gallery index: the k nearest gallery images of each query, attribute pre-filtering inside faiss,
own copies left out, re-ranking / query expansion / another metric on the returned candidates.

A filter becomes a faiss ``IDSelector`` (only passing ids are scored) and widens the search by the inverse of its
pass rate (ivf_pq ``nprobe``, hnsw ``ef_search``). On hnsw, a filter passing at most ``exact_below`` images is
searched exactly over their vectors instead (a graph walk meets too few of them: slower and less complete than
scoring them all). A query that still gets fewer than ``top_k`` results while more pass is searched again exactly.
So a filter returns ``top_k`` results whenever that many images pass. A gallery file byte-identical to the query (same
SHA-256) is never reported. Re-ranking
(k-reciprocal), query expansion (alpha-QE) and a metric other than the index's work on the ``shortlist`` best
candidates of each query (pooled over queries, at most ``max_pool`` images per pool); with a shortlist at least
as large as the filtered gallery they equal a dense search of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.records import DataError, file_digest, image_paths
from src.inference import embed_files
from src.metrics.postprocess import retrieval_distances
from src.models.loading import load_network
from src.retrieval import kinds
from src.retrieval.checks import check_search
from src.retrieval.filtering import IdSelector, filter_mask
from src.retrieval.store import GalleryIndex, GalleryIndexError, UnreadableImagesWarning, load_index

EXACT_BELOW = 20_000
SHORTLIST = 100
MAX_POOL = 4_000


@dataclass
class Neighbours:
    rows: np.ndarray  # (Q, k) records rows, nearest first; -1 where fewer than k
    distances: np.ndarray  # (Q, k) float32 in the index's metric; inf where fewer than k

    def pairs(self, q: int) -> list[tuple[int, float]]:
        keep = self.rows[q] >= 0
        return [(int(r), float(d)) for r, d in zip(self.rows[q][keep], self.distances[q][keep])]


def check_queries(index: GalleryIndex, queries) -> np.ndarray:
    q = np.asarray(queries.detach().cpu().numpy() if isinstance(queries, torch.Tensor) else queries, dtype=np.float32)
    if q.ndim != 2:
        raise GalleryIndexError(f"query embeddings must be 2-D (num_queries, dim), got shape {q.shape}")
    if q.shape[1] != index.dim:
        raise GalleryIndexError(f"query embeddings are {q.shape[1]}-d, the index {index.folder} holds {index.dim}-d "
                                f"embeddings of checkpoint {index.checkpoint}")
    bad = np.flatnonzero(~np.isfinite(q).all(1))
    if len(bad):
        raise GalleryIndexError(f"query embeddings contain NaN/inf in rows {bad[:10].tolist()}")
    return q


def _exact(index: GalleryIndex, q: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared L2, records rows) of the k nearest among ``rows``, by their stored embeddings."""
    distances, found = faiss.knn(q, index.vectors(rows), min(k, len(rows)))
    return distances, np.where(found >= 0, rows[np.maximum(found, 0)], -1)


def _rescore(index: GalleryIndex, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact squared L2 from each query to its candidate rows (-1: inf)."""
    unique, inverse = np.unique(np.maximum(rows, 0), return_inverse=True)
    vectors = index.vectors(unique)[inverse.reshape(rows.shape)]
    distances = ((vectors - q[:, None, :]) ** 2).sum(-1)
    return np.where(rows >= 0, distances, np.inf).astype(np.float32)


def nearest(index: GalleryIndex, queries, k: int, *, passing: np.ndarray | None = None,
            exclude: Sequence[Sequence[int]] | None = None, nprobe: int | None = None, ef_search: int | None = None,
            refine: int | None = None, exact_below: int = EXACT_BELOW) -> Neighbours:
    """The ``k`` nearest gallery rows of each query embedding among the rows where ``passing`` is True (all when
    None), leaving out each query's ``exclude`` rows. Distances are the index metric's (L2, or 1 - cos)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = kinds.prepared(check_queries(index, queries), index.metric)
    num = len(q)
    rows_out = np.full((num, k), -1, np.int64)
    dist_out = np.full((num, k), np.inf, np.float32)
    allowed = np.flatnonzero(passing) if passing is not None else None
    num_passing = len(index) if allowed is None else len(allowed)
    if num == 0 or num_passing == 0:
        return Neighbours(rows_out, dist_out)
    exclude = exclude or [[] for _ in range(num)]
    want = min(k + max((len(e) for e in exclude), default=0), num_passing)
    params = {**index.params, **{name: value for name, value in
                                 (("nprobe", nprobe), ("ef_search", ef_search), ("refine", refine)) if value is not None}}
    kind = kinds.of(index.kind)
    if kind.exact_when_filtered and allowed is not None and num_passing <= exact_below:
        distances, rows = _exact(index, q, want, allowed)
    else:
        selector = None
        if allowed is not None or index.tombstones:
            selector = IdSelector(index.ids if allowed is None else index.ids[allowed], int(index.meta["next_id"]))
        fetch = kind.candidates(params, want)
        search_params = kind.search_parameters(params, fetch, selector and selector.selector,
                                               num_passing / max(len(index), 1))
        distances, ids = index.faiss.search(q, fetch, params=search_params)
        rows = index.rows_of(ids)
        if kind.rescores(params):
            distances = _rescore(index, q, rows)
        short = np.flatnonzero((rows >= 0).sum(1) < want)  # the approximate search met too few passing images
        if len(short):
            width = max(distances.shape[1], want)
            distances, rows = _pad(distances, width), _pad(rows, width, -1)
            d_exact, r_exact = _exact(index, q[short], want, np.arange(len(index)) if allowed is None else allowed)
            distances[short], rows[short] = _pad(d_exact, width), _pad(r_exact, width, -1)
    for i in range(num):
        valid = rows[i] >= 0
        if exclude[i]:
            valid &= ~np.isin(rows[i], np.asarray(exclude[i], np.int64))
        r, d = rows[i][valid], distances[i][valid]
        order = np.lexsort((r, d))[:k]  # by distance, ties by gallery row (a stable sort of the dense search)
        rows_out[i, :len(order)], dist_out[i, :len(order)] = r[order], kinds.to_distance(d[order], index.metric)
    return Neighbours(rows_out, dist_out)


def _pad(array: np.ndarray, width: int, fill=np.inf) -> np.ndarray:
    if array.shape[1] >= width:
        return array
    out = np.full((array.shape[0], width), fill, dtype=array.dtype)
    out[:, :array.shape[1]] = array
    return out


# ------------------------------------------------------------------------------------------------ image queries
@dataclass
class SearchResult:
    index: GalleryIndex
    query_names: list[str]
    query_paths: list[Path]
    query_sha256: list[str]
    query_attributes: np.ndarray  # (Q, 12) predicted classes
    candidates: np.ndarray  # gallery rows that passed the filter
    matches: list[list[tuple[int, float]]]  # per query: (gallery row, distance), nearest first
    excluded: list[list[int]]  # per query: gallery rows left out as its own copy
    conditions: dict[str, list[int]] = field(default_factory=dict)
    rerank: bool = False
    query_expansion: bool = False
    unreadable: list[str] = field(default_factory=list)
    metric: str = "euclidean"
    p_same: list[list[float]] | None = None  # per match: calibrated P(same identity) of its plain embedding distance


def index_calibration(index: GalleryIndex, ckpt_path=None) -> dict | None:
    """The calibration (plain distances) of the network that embeds the queries, when no query needed it loaded (its
    contract carries it then); None when it carries none or is not at hand (an index built from embeddings, a moved
    checkpoint)."""
    from src.models.loading import read_calibration

    path = Path(ckpt_path or index.checkpoint or "")
    return read_calibration(path, "plain") if index.checkpoint and path.is_file() else None


def match_probabilities(index: GalleryIndex, q: np.ndarray, matches: list[list[tuple[int, float]]],
                        calibration: dict | None) -> list[list[float]] | None:
    """P(same identity) of every match from the plain embedding distance (the network's calibration, src.release),
    whatever re-ranking, expansion or filter ordered the list: a pair scores the same in every search. None without
    a calibration."""
    from src.metrics.distance import pairwise_distance
    from src.metrics.verification import p_same

    if calibration is None:
        return None
    out = []
    for i, found in enumerate(matches):
        rows = [row for row, _ in found]
        if not rows:
            out.append([])
            continue
        distances = pairwise_distance(torch.from_numpy(np.ascontiguousarray(q[i:i + 1])),
                                      torch.from_numpy(np.ascontiguousarray(index.rows(np.array(rows, np.int64)))),
                                      index.metric)[0]
        out.append([float(p) for p in p_same(calibration, distances.numpy())])
    return out


def query_files(query: str | Path, subfolders: bool = True) -> tuple[Path, list[str]]:
    """(folder, relative names) of the query images: one image file, or every image in a folder (``list_images``)."""
    folder, paths = image_paths(query, subfolders=subfolders)
    return folder, [p.relative_to(folder).as_posix() for p in paths]


def query_network(index: GalleryIndex, ckpt_path: str | Path | None):
    """(network, contract) that embeds queries for ``index``: its checkpoint, checked by SHA-256."""
    path = Path(ckpt_path or index.checkpoint)
    if not path.is_file():
        raise GalleryIndexError(f"checkpoint {path} (the one the index was built with) not found; pass ckpt_path=PATH "
                                "to the same checkpoint file")
    sha = file_digest(path)
    if sha != index.checkpoint_sha256:
        raise GalleryIndexError(f"the index was built with checkpoint {index.checkpoint} (sha256 "
                                f"{index.checkpoint_sha256[:12]}), not with {path} (sha256 {sha[:12]}); queries "
                                "must be embedded by the same network")
    return load_network(path, "reid", "a search")


def rows_by_hash(index: GalleryIndex, hashes: Sequence[str]) -> dict[str, list[int]]:
    """Gallery rows holding each of these file hashes (one vectorised lookup)."""
    column = index.records["sha256"]
    hits = np.flatnonzero(column.isin(list(hashes)).to_numpy())
    out: dict[str, list[int]] = {}
    for row, sha in zip(hits.tolist(), column.iloc[hits].tolist()):
        out.setdefault(sha, []).append(row)
    return out


def embed_queries(index: GalleryIndex, folder: Path, names: list[str], *, ckpt_path=None, batch_size: int = 64,
                  num_workers: int = 0):
    """(kept names, hashes, embeddings, attributes, unreadable names, the network's contract or None when every query
    was in the index); queries already in the index reuse its rows."""
    hashes = [file_digest(folder / n) for n in names]
    in_index = rows_by_hash(index, hashes)
    embeddings = np.empty((len(names), index.dim), np.float32)
    attributes = np.empty((len(names), len(HEADS)), np.int64)
    known = [i for i, h in enumerate(hashes) if h in in_index]
    rows = np.array([in_index[hashes[i]][0] for i in known], np.int64)
    if known:
        embeddings[known], attributes[known] = index.rows(rows), index.attributes[rows]
    todo = [i for i, h in enumerate(hashes) if h not in in_index]
    bad: dict[int, str] = {}
    contract = None
    if todo:
        net, contract = query_network(index, ckpt_path)
        fresh = embed_files(net, [folder / names[i] for i in todo], index.height, index.width,
                            batch_size=batch_size, num_workers=num_workers, desc="embedding queries")
        ok = [todo[i] for i in fresh.ok]
        if ok:
            values = fresh.numpy()
            embeddings[ok] = values["embedding"]
            attributes[ok] = np.stack([values[name].argmax(1) for name in HEAD_NAMES], axis=1)
        bad = {todo[i]: error for i, error in fresh.errors.items()}
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable query images: " + "; ".join(list(bad.values())[:20]),
                      UnreadableImagesWarning, stacklevel=2)
    keep = [i for i in range(len(names)) if i not in bad]
    return ([names[i] for i in keep], [hashes[i] for i in keep], embeddings[keep], attributes[keep],
            [names[i] for i in sorted(bad)], contract)


def search(index: GalleryIndex | str | Path, query: str | Path, *, top_k: int = 20, filter=None,
           postprocess: Mapping | None = None, metric: str | None = None, ckpt_path=None,
           batch_size: int = 64, num_workers: int = 0, kind: str | None = None, height: int | None = None,
           width: int | None = None, nprobe: int | None = None, ef_search: int | None = None,
           refine: int | None = None, shortlist: int = SHORTLIST, exact_below: int = EXACT_BELOW,
           max_pool: int = MAX_POOL, subfolders: bool = True) -> SearchResult:
    """Rank the (filtered) gallery of ``index`` for every query image; see the module docstring. ``postprocess``:
    re-ranking / query expansion as in ``conf/postprocess/default.yaml`` (``src/metrics/postprocess.py``)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    postprocess = postprocess or {}
    rerank = bool((postprocess.get("rerank") or {}).get("enabled"))
    query_expansion = bool((postprocess.get("query_expansion") or {}).get("enabled"))
    index = index if isinstance(index, GalleryIndex) else load_index(index)
    conditions = check_search(index, filter=filter, postprocess=postprocess, kind=kind, height=height, width=width)
    folder, names = query_files(query, subfolders)
    names, hashes, q, q_attributes, unreadable, contract = embed_queries(index, folder, names, ckpt_path=ckpt_path,
                                                               batch_size=batch_size, num_workers=num_workers)
    if not names:
        raise DataError(f"{query}: none of the query images could be read")
    passing = filter_mask(index.attributes, conditions) if conditions else None
    candidates = np.flatnonzero(passing) if passing is not None else np.arange(len(index))
    metric = metric or index.metric
    result = SearchResult(index, names, [folder / n for n in names], hashes, q_attributes, candidates,
                          [[] for _ in names], [[] for _ in names], conditions, rerank, query_expansion, unreadable,
                          metric)
    if len(candidates) == 0:
        return result
    copies = rows_by_hash(index, hashes)
    excluded = [[r for r in copies.get(h, []) if passing is None or passing[r]] for h in hashes]
    result.excluded = excluded
    result.matches = rank(index, q, top_k, exclude=excluded, passing=passing, postprocess=postprocess, metric=metric,
                          shortlist=shortlist, max_pool=max_pool, nprobe=nprobe, ef_search=ef_search, refine=refine,
                          exact_below=exact_below)
    calibration = contract.calibration("plain") if contract else index_calibration(index, ckpt_path)  # read once
    result.p_same = match_probabilities(index, q, result.matches, calibration)
    return result


def rank(index: GalleryIndex, q: np.ndarray, top_k: int, *, exclude: Sequence[Sequence[int]],
         passing: np.ndarray | None = None, postprocess: Mapping | None = None, metric: str | None = None,
         shortlist: int = SHORTLIST, max_pool: int = MAX_POOL, **faiss_options) -> list[list[tuple[int, float]]]:
    """The one ranking of every caller (src.search, the app): each query's ``top_k`` (gallery row, distance), nearest
    first, among the ``passing`` rows, its ``exclude`` rows (own copies) left out. Re-ranking, query expansion or
    another metric than the index's work on each query's best ``shortlist`` candidates (pooled over consecutive
    queries up to ``max_pool`` images); ``faiss_options``: ``nearest``'s nprobe, ef_search, refine, exact_below."""
    postprocess = postprocess or {}
    metric = metric or index.metric
    if not ((postprocess.get("rerank") or {}).get("enabled") or (postprocess.get("query_expansion") or {}).get("enabled")
            or metric != index.metric):
        found = nearest(index, q, top_k, passing=passing, exclude=exclude, **faiss_options)
        return [found.pairs(i) for i in range(len(q))]
    found = nearest(index, q, max(top_k, shortlist) + max((len(e) for e in exclude), default=0), passing=passing,
                    **faiss_options)
    matches: list[list[tuple[int, float]]] = [[] for _ in range(len(q))]
    for group, pool in _pools(found.rows, max_pool):
        distances = torch.as_tensor(retrieval_distances(torch.from_numpy(np.ascontiguousarray(q[group])),
                                                        torch.from_numpy(np.ascontiguousarray(index.rows(pool))), metric,
                                                        postprocess)).clone()
        for offset, i in enumerate(group):
            row = distances[offset]
            row[torch.from_numpy(np.isin(pool, np.asarray(exclude[i], np.int64)))] = float("inf")
            values, order = torch.sort(row, stable=True)
            finite = torch.isfinite(values[:top_k])
            matches[i] = [(int(pool[c]), float(d)) for c, d in
                          zip(order[:top_k][finite].tolist(), values[:top_k][finite].tolist())]
    return matches


def _pools(rows: np.ndarray, max_pool: int):
    """Groups of consecutive queries and the sorted union of their candidate rows (at most ``max_pool`` per group,
    a single query's candidates always fit)."""
    group, pool = [], set()
    for i, candidates in enumerate(rows):
        mine = set(candidates[candidates >= 0].tolist())
        if group and len(pool | mine) > max_pool:
            yield group, np.array(sorted(pool), np.int64)
            group, pool = [], set()
        group.append(i)
        pool |= mine
    if group:
        yield group, np.array(sorted(pool), np.int64)
