"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), memory-frugal torch version.

Same inputs, parameters and output as torchreid 0.2.5 ``reid/utils/rerank.py``
but it never builds the dense (Q+G) x (Q+G) matrices: rows of the normalised
squared-distance matrix are produced block by block (twice: once for the top-k
neighbour lists, once to read the weights), the k-reciprocal encodings ``V``
are kept sparse, and the Jaccard term is a sparse join over shared neighbours.
Peak extra memory is O((Q+G) * (k1 + block)) plus the Q x G output.

Differences from the reference are float32 summation order only (~1e-7), and
tie order among exactly equal distances (argsort vs topk), which only matters
for duplicated images.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .distance import distance_block, prepare_features

ROW_BLOCK = 256  # rows of the (Q+G)-wide distance matrix processed at once
TILE = 64  # rows per tile when copying transposed column blocks
PAIR_BUDGET = 1 << 22  # (query entry, gallery entry) pairs per Jaccard step
JACCARD_ELEMENTS = 1 << 21  # query x gallery Jaccard values per step (8 MiB)


class _MatrixSource:
    """The reference's ``original_dist`` (before normalisation) built lazily from the three matrices.

    Row ``i`` is column ``i`` of ``[[qq, qg], [qg.T, gg]]``, squared, as float32.
    """

    def __init__(self, qg: torch.Tensor, qq: torch.Tensor, gg: torch.Tensor):
        dtype = torch.promote_types(torch.promote_types(qg.dtype, qq.dtype), gg.dtype)
        self.qg, self.qq, self.gg = (x.to(dtype) for x in (qg, qq, gg))  # no copy when already dtype
        self.num_query, self.num_total = len(qq), len(qq) + len(gg)

    @staticmethod
    def _columns(mat: torch.Tensor, start: int, stop: int, out: torch.Tensor) -> None:
        for a in range(0, len(mat), TILE):  # tiled transpose: far faster than one strided copy
            out[:, a : a + TILE].copy_(mat[a : a + TILE, start:stop].T)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        nq = self.num_query
        out = torch.empty(stop - start, self.num_total, dtype=self.qg.dtype)
        if stop <= nq:
            self._columns(self.qq, start, stop, out[:, :nq])
            out[:, nq:] = self.qg[start:stop]
        else:  # blocks never straddle the query/gallery boundary
            self._columns(self.qg, start - nq, stop - nq, out[:, :nq])
            self._columns(self.gg, start - nq, stop - nq, out[:, nq:])
        return out.square_().to(torch.float32)

    def gather(self, start: int, stop: int, index: torch.Tensor) -> torch.Tensor:
        """``rows(start, stop).gather(1, index)`` without building the rows."""
        nq = self.num_query
        i = torch.arange(start, stop).unsqueeze(1).expand_as(index)
        j = index
        out = torch.empty(index.shape, dtype=self.qg.dtype)
        qi, qj = i < nq, j < nq
        for m, values in (
            (qi & qj, lambda m: self.qq[j[m], i[m]]),
            (~qi & qj, lambda m: self.qg[j[m], i[m] - nq]),
            (qi & ~qj, lambda m: self.qg[i[m], j[m] - nq]),  # A[j, i] = qg.T[j - nq, i]
            (~qi & ~qj, lambda m: self.gg[j[m] - nq, i[m] - nq]),
        ):
            out[m] = values(m)
        return out.square_().to(torch.float32)

    def query_gallery(self, start: int, stop: int) -> torch.Tensor:
        return self.qg[start:stop].square().to(torch.float32)


class _FeatureSource:
    """Squared distances of the stacked ``[query; gallery]`` features, computed on demand."""

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str):
        self.num_query, self.num_total = len(qf), len(qf) + len(gf)
        x = torch.cat([qf, gf])
        self.x, _, self.x_sq = prepare_features(x, x, metric)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return distance_block(self.x[start:stop], self.x, self.x_sq).square_().to(torch.float32)

    def gather(self, start: int, stop: int, index: torch.Tensor) -> torch.Tensor:
        """Squared distances of rows ``start:stop`` to their ``index`` items only (no full rows)."""
        out = torch.empty(index.shape, dtype=torch.float32)
        step = max(1, (1 << 22) // (index.shape[1] * self.x.shape[1] or 1))  # <= 4M gathered values
        for s in range(0, stop - start, step):
            idx = index[s : s + step]
            x = self.x[start + s : start + s + len(idx)]
            dot = torch.bmm(self.x[idx], x.unsqueeze(2)).squeeze(2)
            if self.x_sq is None:  # cosine on unit vectors
                d = 1 - dot
            else:
                x_sq = self.x_sq[start + s : start + s + len(idx), None]
                d = (x_sq + self.x_sq[idx] - 2 * dot).clamp_min_(0).sqrt_()
            out[s : s + len(idx)] = d.square_()
        return out

    def query_gallery(self, start: int, stop: int) -> torch.Tensor:
        nq = self.num_query
        g_sq = None if self.x_sq is None else self.x_sq[nq:]
        return distance_block(self.x[start:stop], self.x[nq:], g_sq).square_().to(torch.float32)


def _blocks(num_query: int, num_total: int, block: int):
    """Row ranges of at most ``block`` rows that never straddle the query/gallery boundary."""
    for lo, hi in ((0, num_query), (num_query, num_total)):
        for s in range(lo, hi, block):
            yield s, min(s + block, hi)


def _k_reciprocal_sets(nearest: torch.Tensor, k1: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Expanded k-reciprocal neighbour sets as padded ``(index, mask)`` arrays, indices ascending."""
    num, k = nearest.shape[0], min(k1 + 1, nearest.shape[1])
    half = min(int(np.around(k1 / 2.0)) + 1, k)
    ar = torch.arange(num)
    knn, hnn = nearest[:, :k], nearest[:, :half]
    reciprocal = (knn[knn] == ar[:, None, None]).any(2)  # (N, k): i is in the top-k of its neighbour
    half_reciprocal = (hnn[hnn] == ar[:, None, None]).any(2)  # (N, half)
    half_size = half_reciprocal.sum(1).double()

    rows, cols = [], []
    for s in range(0, num, block):
        knn_b, rec_b = knn[s : s + block], reciprocal[s : s + block]
        members = hnn[knn_b].flatten(1)  # R(c, k1/2) of every neighbour c, (b, k * half)
        member_ok = half_reciprocal[knn_b].flatten(1)
        in_set = torch.zeros(len(knn_b), num + 1, dtype=torch.bool)  # column num = "nothing"
        in_set.scatter_(1, torch.where(rec_b, knn_b, num), True)  # R(i, k1)
        overlap = (in_set.gather(1, members) & member_ok).view(-1, k, half).sum(2)
        accept = rec_b & (overlap.double() > 2.0 / 3 * half_size[knn_b])
        expand = member_ok & accept.repeat_interleave(half, dim=1)
        in_set.scatter_(1, torch.where(expand, members, num), True)
        r, c = in_set[:, :num].nonzero(as_tuple=True)
        rows.append(r + s)
        cols.append(c)
    rows, cols = torch.cat(rows), torch.cat(cols)
    counts = torch.bincount(rows, minlength=num)
    slot = torch.arange(len(rows)) - (counts.cumsum(0) - counts)[rows]
    index = torch.zeros(num, int(counts.max()), dtype=torch.long)
    index[rows, slot] = cols
    return index, torch.arange(index.shape[1]) < counts[:, None]


def _sparse_rows(index: torch.Tensor, mask: torch.Tensor, values: torch.Tensor, num: int) -> torch.Tensor:
    rows = torch.arange(len(index)).unsqueeze(1).expand_as(index)
    return torch.sparse_coo_tensor(torch.stack([rows[mask], index[mask]]), values[mask], (len(index), num),
                                   check_invariants=False)


def _jaccard_into(out: torch.Tensor, v: torch.Tensor, num_query: int, lambda_value: float) -> None:
    """``out += (1 - lambda) * jaccard(query rows, gallery rows)`` via a sparse join on shared columns."""
    for qa, qb, jaccard in _jaccard_blocks(v, num_query, out.shape[1]):
        out[qa:qb] += jaccard.mul_(1 - lambda_value)


def _jaccard_blocks(v: torch.Tensor, num_query: int, num_gallery: int):
    """Jaccard distances of query rows ``qa:qb`` to every gallery row, a bounded block of queries at a time."""
    (row, col), val = v.indices(), v.values()  # coalesced: sorted by (row, col)
    is_q = row < num_query
    q_row, q_col, q_val = row[is_q], col[is_q], val[is_q]
    g_col, order = col[~is_q].sort(stable=True)
    g_row, g_val = row[~is_q][order] - num_query, val[~is_q][order]
    col_count = torch.bincount(g_col, minlength=v.shape[1])
    col_start = col_count.cumsum(0) - col_count

    pairs = col_count[q_col]
    pairs_per_query = torch.zeros(num_query, dtype=torch.long).index_add_(0, q_row, pairs).tolist()
    max_rows = max(1, JACCARD_ELEMENTS // num_gallery)
    query_bounds, used = [0], 0
    for qi, p in enumerate(pairs_per_query):  # steps of <= PAIR_BUDGET pairs and <= max_rows queries
        if used and (used + p > PAIR_BUDGET or qi - query_bounds[-1] >= max_rows):
            query_bounds.append(qi)
            used = 0
        used += p
    query_bounds.append(num_query)
    entry_bounds = torch.searchsorted(q_row, torch.tensor(query_bounds)).tolist()

    for (qa, qb), (ea, eb) in zip(zip(query_bounds, query_bounds[1:]), zip(entry_bounds, entry_bounds[1:])):
        counts = pairs[ea:eb]
        entry = torch.repeat_interleave(torch.arange(eb - ea), counts)
        offset = col_start[q_col[ea:eb]] - (counts.cumsum(0) - counts)
        pos = torch.arange(len(entry)) + offset[entry]
        shared = torch.minimum(q_val[ea:eb][entry], g_val[pos])
        target = (q_row[ea:eb][entry] - qa) * num_gallery + g_row[pos]
        temp_min = torch.zeros((qb - qa) * num_gallery).index_add_(0, target, shared).view(qb - qa, num_gallery)
        temp_min /= 2.0 - temp_min  # in place: jaccard = 1 - temp_min / (2 - temp_min)
        yield qa, qb, temp_min.neg_().add_(1)


@contextmanager
def _torch_threads(num: int):
    """Temporarily set torch's intra-op thread count.

    Re-ranking issues many medium-sized ops; on a shared (busy) CPU each
    parallel op waits at OpenMP barriers for descheduled threads, which made
    the 2-thread run 2-4x *slower* than 1 thread in our measurements.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
@_torch_threads(1)
def _re_rank(source, k1: int, k2: int, lambda_value: float, block: int) -> torch.Tensor:
    """Core re-ranking over the implicit (N, N) squared-distance matrix of ``source``."""
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    num_query, num_total = source.num_query, source.num_total
    v, nearest, row_max = _encodings(source, k1, k2, block)
    out = torch.empty(num_query, num_total - num_query, dtype=torch.float32)
    for s, e in _blocks(num_query, num_query, 4 * block):
        out[s:e] = source.query_gallery(s, e) / row_max[s:e] * lambda_value
    _jaccard_into(out, v, num_query, lambda_value)
    return out


def _encodings(source, k1: int, k2: int, block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k-reciprocal encodings ``V`` (sparse, coalesced, rows sum to 1), the nearest-neighbour lists and each
    row's maximum squared distance (the reference's normaliser)."""
    num_query, num_total = source.num_query, source.num_total
    k = min(max(k1 + 1, k2), num_total)
    nearest = torch.empty(num_total, k, dtype=torch.long)
    row_max = torch.empty(num_total, 1)
    for s, e in _blocks(num_query, num_total, block):
        rows = source.rows(s, e)
        row_max[s:e] = rows.max(dim=1, keepdim=True).values
        rows /= row_max[s:e]  # the reference's original_dist[s:e]
        nearest[s:e] = torch.topk(rows, k, dim=1, largest=False, sorted=True).indices
    del rows

    index, mask = _k_reciprocal_sets(nearest, k1, block)
    weights = torch.empty(index.shape, dtype=torch.float32)
    for s, e in _blocks(num_query, num_total, 4 * block):
        w = torch.exp(-(source.gather(s, e, index[s:e]) / row_max[s:e])) * mask[s:e]
        weights[s:e] = w / w.sum(1, keepdim=True)
    v = _sparse_rows(index, mask, weights, num_total)
    if k2 != 1:  # query expansion: average the encodings of the k2 nearest neighbours
        nbr = nearest[:, :k2]
        v = _sparse_rows(index[nbr].flatten(1), mask[nbr].flatten(1), weights[nbr].flatten(1), num_total)
        v = v.coalesce()
        v = torch.sparse_coo_tensor(v.indices(), v.values() / k2, v.shape, is_coalesced=True,
                                    check_invariants=False)
    return v.coalesce(), nearest, row_max


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               block: int = ROW_BLOCK):
    """k-reciprocal re-ranked query-gallery distances, equivalent to torchreid's ``re_ranking``.

    Takes the (Q, G), (Q, Q) and (G, G) distance matrices (numpy or torch) and
    returns the (Q, G) float32 re-ranked distances, as numpy if ``q_g_dist`` is
    numpy, else as a tensor.
    """
    qg, qq, gg = (torch.as_tensor(x) for x in (q_g_dist, q_q_dist, g_g_dist))
    num_query, num_gallery = qg.shape if qg.ndim == 2 else (None, None)
    if num_query is None or qq.shape != (num_query, num_query) or gg.shape != (num_gallery, num_gallery):
        raise ValueError(f"expected shapes (Q,G), (Q,Q), (G,G); got {tuple(qg.shape)}, "
                         f"{tuple(qq.shape)}, {tuple(gg.shape)}")
    if num_query == 0 or num_gallery == 0:
        raise ValueError("re-ranking needs at least one query and one gallery item")

    out = _re_rank(_MatrixSource(qg, qq, gg), k1, k2, lambda_value, block)
    return out.numpy() if isinstance(q_g_dist, np.ndarray) else out


def re_ranking_from_features(qf, gf, metric: str = "euclidean", k1: int = 20, k2: int = 6,
                             lambda_value: float = 0.3, block: int = ROW_BLOCK) -> torch.Tensor:
    """Re-rank straight from features; never stores the (Q+G)^2 or G^2 distance matrices."""
    qf, gf = torch.as_tensor(qf), torch.as_tensor(gf)
    if len(qf) == 0 or len(gf) == 0:
        raise ValueError("re-ranking needs at least one query and one gallery item")
    return _re_rank(_FeatureSource(qf, gf, metric), k1, k2, lambda_value, block)


@torch.no_grad()
@_torch_threads(1)
def jaccard_graph(features, metric: str = "cosine", k1: int = 30, k2: int = 6, max_distance: float = 0.6,
                  block: int = ROW_BLOCK):
    """All-pairs k-reciprocal Jaccard distances of one set (lambda 0), as a sparse ``scipy.sparse.csr_matrix``
    holding only the pairs closer than ``max_distance`` (the diagonal included, as explicit zeros).

    For density clustering (DBSCAN ``metric="precomputed"``): the N x N matrix is never built; distances are
    produced a bounded block of rows at a time and thresholded, so memory stays O(N * (k1 + kept pairs per row)).
    """
    from scipy.sparse import coo_matrix

    x = torch.as_tensor(features, dtype=torch.float32)
    num = len(x)
    if num < 2:
        raise ValueError(f"the Jaccard graph needs at least 2 items, got {num}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    v, _, _ = _encodings(_FeatureSource(x[:0], x, metric), k1, k2, block)
    (row, col), values = v.indices(), v.values()
    both = torch.sparse_coo_tensor(torch.stack([torch.cat([row, row + num]), torch.cat([col, col])]), torch.cat([values, values]),
                                   (2 * num, num), check_invariants=False).coalesce()  # the set as queries and as gallery
    rows, cols, dists = [], [], []
    for qa, _, jaccard in _jaccard_blocks(both, num, num):
        r, c = (jaccard < max_distance).nonzero(as_tuple=True)
        rows.append(r + qa)
        cols.append(c)
        dists.append(jaccard[r, c].clamp_min_(0))
    rows, cols, dists = torch.cat(rows).numpy(), torch.cat(cols).numpy(), torch.cat(dists).numpy()
    return coo_matrix((dists, (rows, cols)), shape=(num, num)).tocsr()
