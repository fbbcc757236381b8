"""Market-1501 ranking metrics (CMC, mAP, mINP), vectorised and memory-bounded.

Protocol (identical to torchreid 0.2.5 ``eval_market1501``): for each query the
gallery items with the same pid *and* the same camid are discarded; queries
whose identity has no remaining gallery image are skipped (and counted).
Additionally gallery items whose pid is in ``ignore_pids`` (default ``(-1,)``,
Market-1501 "junk") are discarded for every query -- torchreid drops those
images when it loads the dataset, so the numbers match torchreid end to end.
Pass ``ignore_pids=()`` to treat them as ordinary negatives, exactly like
``eval_market1501`` called on a gallery that still contains them.

Speed: instead of fully sorting every row, the rank of each positive is
obtained by counting the gallery items closer than it (one ``searchsorted``
pass per row block against that row's few same-identity distances). Rows in
which a positive ties exactly with another gallery item fall back to
``np.argsort`` (numpy's default kind, as torchreid uses), so even tie-breaking
matches the reference bit for bit.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .distance import as_numpy, iter_distance_chunks, prepare_features

BLOCK_ELEMENTS = 1 << 20  # ranking block: about this many distances (cache-friendly)
DISTANCE_BLOCK_ELEMENTS = 1 << 25  # distance chunk from features (128 MiB in float32): efficient GEMMs


@dataclass
class RankedGallery:
    """Gallery labels grouped by identity, to find a query's same-pid items fast."""

    pids: np.ndarray
    camids: np.ndarray
    by_pid: np.ndarray  # gallery indices sorted by pid
    unique_pids: np.ndarray
    pid_start: np.ndarray
    pid_count: np.ndarray

    @classmethod
    def build(cls, pids: np.ndarray, camids: np.ndarray) -> RankedGallery:
        unique, inverse, counts = np.unique(pids, return_inverse=True, return_counts=True)
        return cls(pids, camids, np.argsort(inverse, kind="stable"), unique,
                   np.cumsum(counts) - counts, counts)

    def lookup(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (start, count) into ``by_pid`` of each query's identity (count 0 if absent)."""
        pos = np.searchsorted(self.unique_pids, q_pids).clip(max=max(len(self.unique_pids) - 1, 0))
        found = self.unique_pids[pos] == q_pids if len(self.unique_pids) else np.zeros(len(q_pids), bool)
        return self.pid_start[pos], np.where(found, self.pid_count[pos], 0)


@dataclass
class BlockRanks:
    """Ranks of the positives (and distances of the removed items) for a block of queries."""

    pos_row: np.ndarray  # block-local query row of each positive, sorted by (row, rank)
    pos_rank: np.ndarray  # 1-based rank among the query's valid gallery items
    pos_dist: np.ndarray
    rem_row: np.ndarray  # same pid & same camid items (excluded by the protocol)
    rem_dist: np.ndarray


def _argsort_ranks(dist: np.ndarray, q_pids, q_camids, gallery: RankedGallery) -> np.ndarray:
    """Ranks of valid positives via a full ``np.argsort`` (reference tie order), row-major."""
    order = np.argsort(dist, axis=1)
    row, pos = np.nonzero(gallery.pids[order] == q_pids[:, None])
    removed = gallery.camids[order[row, pos]] == q_camids[row]
    starts = np.searchsorted(row, row)  # first same-pid entry of each row
    removed_cum = np.cumsum(removed)
    removed_before = removed_cum - removed - (removed_cum - removed)[starts]
    return (pos + 1 - removed_before)[~removed]


def rank_block(dist: np.ndarray, q_pids, q_camids, gallery: RankedGallery) -> BlockRanks:
    """Rank the positives of a block of queries (rows of ``dist``) under the Market protocol."""
    num_rows, num_gallery = dist.shape
    counted = np.require(dist, np.float64 if dist.dtype not in (np.float32, np.float64) else None, ["C", "W"])
    start, count = gallery.lookup(q_pids)
    kmax = int(count.max(initial=0))
    empty = np.empty(0, np.int64)
    if kmax == 0:
        return BlockRanks(empty, empty, empty.astype(counted.dtype), empty, empty.astype(counted.dtype))

    # Same-identity gallery items of every row (padded to kmax), sorted by distance.
    slot = np.arange(kmax)
    valid = slot < count[:, None]
    gidx = gallery.by_pid[np.where(valid, start[:, None] + slot, 0)]
    sdist = np.where(valid, counted[np.arange(num_rows)[:, None], gidx], np.inf).astype(counted.dtype)
    removed = valid & (gallery.camids[gidx] == q_camids[:, None])
    order = np.argsort(sdist, axis=1, kind="stable")
    sdist = np.take_along_axis(sdist, order, 1)
    valid, removed = np.take_along_axis(valid, order, 1), np.take_along_axis(removed, order, 1)
    positive = valid & ~removed

    # Count gallery items strictly closer than each same-identity distance s and than
    # nextafter(s, inf): the difference is the number of items tied with s.
    edges = np.sort(np.concatenate([sdist, np.nextafter(sdist, np.inf)], axis=1), axis=1)
    bucket = torch.searchsorted(torch.from_numpy(edges), torch.from_numpy(counted), right=True)
    hist = torch.zeros(num_rows, edges.shape[1] + 1, dtype=torch.int64)
    hist.scatter_add_(1, bucket, torch.ones((), dtype=torch.int64).expand_as(bucket))
    closer_than_edge = hist.cumsum(1).numpy()  # [:, j] = #items < edges[:, j]

    def closer_than(values: np.ndarray) -> np.ndarray:
        index = (edges[:, None, :] < values[:, :, None]).sum(2)  # any index of the value works
        return np.take_along_axis(closer_than_edge, index, 1)

    closer = closer_than(sdist)
    equal = closer_than(np.nextafter(sdist, np.inf)) - closer
    same_value = (sdist[:, :, None] == sdist[:, None, :]).sum(2)
    special_closer = (sdist[:, :, None] > sdist[:, None, :]).sum(2)
    ordinal = np.cumsum(positive, axis=1) - 1
    rank = 1 + ordinal + closer - special_closer

    # Rows where a same-id distance equals another item's: use numpy's own ordering.
    tied = np.flatnonzero((valid & (equal > same_value)).any(axis=1))
    if len(tied):
        rank_tied = rank[tied]
        rank_tied[positive[tied]] = _argsort_ranks(dist[tied], q_pids[tied], q_camids[tied], gallery)
        rank[tied] = rank_tied

    pos_row, pos_slot = np.nonzero(positive)
    rem_row, rem_slot = np.nonzero(removed)
    return BlockRanks(pos_row, rank[pos_row, pos_slot], sdist[pos_row, pos_slot],
                      rem_row, sdist[rem_row, rem_slot])


def _check_labels(num_query: int, num_gallery: int, q_pids, g_pids, q_camids, g_camids):
    """Validate and return the four label arrays as 1-D numpy arrays."""
    if num_query == 0:
        raise ValueError("empty query set: nothing to evaluate")
    if num_gallery == 0:
        raise ValueError("empty gallery: nothing to rank")
    labels = [np.asarray(as_numpy(x)) for x in (q_pids, g_pids, q_camids, g_camids)]
    expected = (num_query, num_gallery, num_query, num_gallery)
    for name, arr, n in zip(("q_pids", "g_pids", "q_camids", "g_camids"), labels, expected):
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(f"{name} must be 1-D of length {n}, got shape {arr.shape}")
    return labels


def _check_finite_block(block: np.ndarray, start: int) -> None:
    if not np.isfinite(block).all():
        bad = start + np.flatnonzero(~np.isfinite(block).all(axis=1))
        raise ValueError(f"distance matrix has NaN/inf in query rows {bad[:10].tolist()}")


def iter_rank_blocks(blocks: Iterable[tuple[int, np.ndarray]], q_pids: np.ndarray, q_camids: np.ndarray,
                     gallery: RankedGallery, keep_columns: np.ndarray | None,
                     workers: int | None = None) -> Iterator[tuple[int, np.ndarray, BlockRanks]]:
    """Apply :func:`rank_block` to ``(start, distance block)`` pairs, in order.

    Yields ``(start, block, ranks)``. Blocks are ranked by ``workers`` threads
    (default: torch's intra-op thread count; the heavy kernels release the GIL)
    with at most ``2 * workers`` blocks in flight, so memory stays bounded.
    """

    def work(item):
        start, block = item
        block = as_numpy(block)
        if keep_columns is not None:
            block = block.take(keep_columns, axis=1)  # C-contiguous, unlike block[:, keep]
        _check_finite_block(block, start)
        stop = start + len(block)
        return start, block, rank_block(block, q_pids[start:stop], q_camids[start:stop], gallery)

    workers = workers or torch.get_num_threads()
    if workers <= 1:
        yield from map(work, blocks)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in blocks:
            pending.append(pool.submit(work, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _split_blocks(blocks: Iterable[tuple[int, np.ndarray]], rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut ``(start, block)`` pairs into row slices of at most ``rows`` rows (views)."""
    for start, block in blocks:
        for s in range(0, len(block), rows):
            yield start + s, block[s : s + rows]


def prepare_gallery(g_pids, g_camids, ignore_pids: Sequence[int]):
    """Return (RankedGallery without ignored pids, kept column indices or None)."""
    junk = np.isin(g_pids, np.asarray(list(ignore_pids), dtype=g_pids.dtype)) if len(ignore_pids) else None
    if junk is None or not junk.any():
        return RankedGallery.build(g_pids, g_camids), None
    keep = np.flatnonzero(~junk)
    if len(keep) == 0:
        raise ValueError(f"empty gallery: every gallery pid is in ignore_pids={tuple(ignore_pids)}")
    return RankedGallery.build(g_pids[keep], g_camids[keep]), keep


def block_rows(num_gallery: int, chunk_size: int | None, elements: int = BLOCK_ELEMENTS) -> int:
    """Query rows per block: ``chunk_size`` if given, else about ``elements`` distances."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size or max(1, elements // max(num_gallery, 1))


def _summarise(num_query: int, num_gallery: int, ranks: Iterable[tuple[int, BlockRanks]], max_rank: int) -> dict:
    """Turn per-positive ranks into CMC / mAP / mINP."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    rows, rank = [], []
    for start, r in ranks:
        rows.append(r.pos_row + start)
        rank.append(r.pos_rank)
    rows, rank = np.concatenate(rows).astype(np.int64), np.concatenate(rank).astype(np.float64)
    num_pos = np.bincount(rows, minlength=num_query)
    valid = num_pos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError("no query has a matching gallery image from another camera: "
                         "all query identities are absent from the gallery")
    if max_rank > num_gallery:
        warnings.warn(f"max_rank={max_rank} exceeds the gallery size {num_gallery}; "
                      f"clamping max_rank to {num_gallery}", stacklevel=3)
        max_rank = num_gallery

    first = np.searchsorted(rows, np.flatnonzero(valid))  # rows is sorted
    last = first + num_pos[valid] - 1
    ordinal = np.arange(1, len(rows) + 1) - np.repeat(first, num_pos[valid])
    ap = np.bincount(rows, weights=ordinal / rank, minlength=num_query)[valid] / num_pos[valid]
    inp = num_pos[valid] / rank[last]
    first_rank = rank[first].astype(np.int64)
    hits = np.bincount(np.minimum(first_rank, max_rank + 1) - 1, minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(hits) / num_valid
    top = {k: float(np.mean(first_rank <= k)) for k in (1, 5, 10)}
    return {
        "mAP": float(ap.mean()),
        "mINP": float(inp.mean()),
        "cmc": cmc,
        "rank1": top[1],
        "rank5": top[5],
        "rank10": top[10],
        "num_valid_queries": num_valid,
        "num_skipped_queries": num_query - num_valid,
    }


def ranked_blocks_from_matrix(distmat, q_pids, g_pids, q_camids, g_camids, ignore_pids=(-1,), chunk_size=None):
    """Validate inputs; return ``(num_query, num_gallery, iterator of (start, block, BlockRanks))``."""
    distmat = as_numpy(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    q_pids, g_pids, q_camids, g_camids = _check_labels(*distmat.shape, q_pids, g_pids, q_camids, g_camids)
    gallery, keep = prepare_gallery(g_pids, g_camids, ignore_pids)
    rows = block_rows(len(gallery.pids), chunk_size)
    blocks = iter_rank_blocks(_split_blocks([(0, distmat)], rows), q_pids, q_camids, gallery, keep)
    return len(distmat), len(gallery.pids), blocks


def ranked_blocks_from_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric="euclidean",
                                ignore_pids=(-1,), chunk_size=None, query_names=None, gallery_names=None):
    """Like :func:`ranked_blocks_from_matrix`, computing distance blocks from features on the fly."""
    qf, gf = torch.as_tensor(qf), torch.as_tensor(gf)
    q_pids, g_pids, q_camids, g_camids = _check_labels(len(qf), len(gf), q_pids, g_pids, q_camids, g_camids)
    prepare_features(qf, gf, metric, query_names, gallery_names)  # validate before dropping junk rows
    gallery, keep = prepare_gallery(g_pids, g_camids, ignore_pids)
    if keep is not None:
        gf = gf[torch.from_numpy(keep)]
    distance_rows = block_rows(len(gallery.pids), chunk_size, DISTANCE_BLOCK_ELEMENTS)
    rank_rows = min(distance_rows, block_rows(len(gallery.pids), None))

    def blocks():  # one distance chunk (multi-threaded GEMM) at a time, then its sub-blocks in parallel
        for start, chunk in iter_distance_chunks(qf, gf, metric, distance_rows):
            sub_blocks = _split_blocks([(start, chunk.numpy())], rank_rows)
            yield from iter_rank_blocks(sub_blocks, q_pids, q_camids, gallery, None)

    return len(qf), len(gallery.pids), blocks()


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, ignore_pids: Sequence[int] = (-1,),
                  chunk_size: int | None = None) -> dict:
    """Market-1501 CMC / mAP / mINP from a (Q, G) distance matrix (numpy or torch).

    Returns a dict with ``mAP``, ``mINP``, ``cmc`` (numpy array of length
    ``max_rank``), ``rank1``, ``rank5``, ``rank10``, ``num_valid_queries`` and
    ``num_skipped_queries``. ``max_rank`` larger than the (non-junk) gallery is
    clamped with a warning. Queries are ranked in blocks of ``chunk_size``
    rows (default: ~1M distances per block), so temporary memory stays bounded.
    """
    num_query, num_gallery, blocks = ranked_blocks_from_matrix(
        distmat, q_pids, g_pids, q_camids, g_camids, ignore_pids, chunk_size)
    return _summarise(num_query, num_gallery, ((s, r) for s, _, r in blocks), max_rank)


def evaluate_rank_from_features(qf, gf, q_pids, g_pids, q_camids, g_camids, metric: str = "euclidean",
                                max_rank: int = 50, ignore_pids: Sequence[int] = (-1,), chunk_size: int | None = None,
                                query_names: Sequence[str] | None = None,
                                gallery_names: Sequence[str] | None = None) -> dict:
    """Like :func:`evaluate_rank` but computes distances block by block from features.

    The full Q x G matrix is never held: distances are computed ``chunk_size``
    query rows at a time (default: ~32M distances, 128 MiB) and ranked in
    smaller sub-blocks, so peak extra memory is about two such chunks.
    ``query_names`` / ``gallery_names`` name the images in NaN/inf errors.
    """
    num_query, num_gallery, blocks = ranked_blocks_from_features(
        qf, gf, q_pids, g_pids, q_camids, g_camids, metric, ignore_pids, chunk_size, query_names, gallery_names)
    return _summarise(num_query, num_gallery, ((s, r) for s, _, r in blocks), max_rank)


def query_rank_lists(distmat, q_pids, g_pids, q_camids, g_camids, top_k: int = 10, ignore_pids=(-1,)):
    """Per query: AP (NaN when the query has no valid match), rank of its first match (0: none), top-k valid
    gallery indices.

    Valid gallery items follow the Market-1501 protocol of ``src.metrics.rank``: not the query's identity on
    the query's camera, not a junk identity. Ties are broken by gallery order (stable sort).
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids, q_camids, g_camids = (np.asarray(x) for x in (q_pids, g_pids, q_camids, g_camids))
    junk = np.isin(g_pids, list(ignore_pids))
    aps, first, lists = np.full(len(distmat), np.nan), np.zeros(len(distmat), dtype=np.int64), []
    for q, row in enumerate(distmat):
        order = np.argsort(row, kind="stable")
        valid = ~junk[order] & ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        order = order[valid]
        hits = g_pids[order] == q_pids[q]
        if hits.any():
            precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
            aps[q] = precision[hits].mean()
            first[q] = int(np.argmax(hits)) + 1
        lists.append(order[:top_k])
    return aps, first, lists
