"""The faiss search of src.retrieval on identity-structured embeddings (no images): flat equals the dense sort,
approximate kinds find the neighbours, filters act inside the search and return a full top-k, hnsw removals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.data.attributes import HEAD_NAMES
from src.metrics.distance import pairwise_distance
from src.retrieval.build import index_from_embeddings
from src.retrieval.search import nearest, search
from src.retrieval.store import GalleryIndexError
from tests.retrieval.worlds import clustered, gallery, random_probabilities, world  # noqa: F401  (fixtures)

TOP_K = 10


def dense(gallery, queries, k, metric="euclidean", rows=None):
    """Today's dense search: every distance, stable sort."""
    rows = np.arange(len(gallery)) if rows is None else rows
    d = pairwise_distance(torch.from_numpy(queries), torch.from_numpy(gallery[rows]), metric)
    order = torch.argsort(d, dim=1, stable=True)[:, :k]
    return rows[order.numpy()], torch.gather(d, 1, order).numpy()


def make(tmp_path, kind, gallery, metric="euclidean", params=None, probabilities=None):
    names = [f"{i:06d}.jpg" for i in range(len(gallery))]
    return index_from_embeddings(tmp_path / kind, gallery, names, probabilities or random_probabilities(len(gallery)),
                                 kind=kind, params=params, metric=metric)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_flat_ranks_like_the_dense_search(tmp_path, metric):
    gallery, queries, _ = clustered(600)
    index = make(tmp_path, "flat", gallery, metric)
    found = nearest(index, queries, TOP_K)
    rows, distances = dense(gallery, queries, TOP_K, metric)
    assert np.array_equal(found.rows, rows)
    np.testing.assert_allclose(found.distances, distances, atol=1e-4, rtol=1e-4)


def recall(found_rows, exact_rows) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found_rows, exact_rows)]))


@pytest.mark.parametrize("kind", ["ivf_pq", "hnsw"])
def test_approximate_kinds_find_the_exact_neighbours(tmp_path, kind):
    gallery, queries, _ = clustered(3000, num_queries=50)
    index = make(tmp_path, kind, gallery)
    assert index.kind == kind and index.faiss.ntotal == len(gallery)
    found = nearest(index, queries, TOP_K)
    exact, _ = dense(gallery, queries, TOP_K)
    assert recall(found.rows, exact) >= 0.9
    if kind == "ivf_pq":  # without exact re-ranking the compressed codes alone rank worse
        assert index.params["refine"] > 0
        assert recall(nearest(index, queries, TOP_K, refine=0).rows, exact) <= recall(found.rows, exact)


@pytest.mark.parametrize("kind", ["flat", "ivf_pq", "hnsw"])
def test_a_filter_keeping_half_a_percent_still_returns_a_full_top_k(tmp_path, kind):
    gallery, queries, _ = clustered(4000, num_queries=20)
    probabilities = random_probabilities(len(gallery))
    passing = np.random.default_rng(1).choice(len(gallery), 20, replace=False)  # 0.5%
    upcolor = np.full((len(gallery), 9), 0.01, np.float32)
    upcolor[:, 1] = 0.5
    upcolor[passing, 0] = 0.9  # "black" only for these rows
    probabilities["upcolor"] = upcolor
    index = make(tmp_path, kind, gallery, probabilities=probabilities)
    mask = index.attributes[:, HEAD_NAMES.index("upcolor")] == 0
    assert sorted(np.flatnonzero(mask)) == sorted(passing)
    exact, _ = dense(gallery, queries, TOP_K, rows=np.sort(passing))
    for exact_below in (20_000, 0):  # hnsw: exact over the passing rows / a graph walk with an ID selector
        found = nearest(index, queries, TOP_K, passing=mask, exact_below=exact_below)
        assert (found.rows >= 0).all(), "fewer than top_k results although 20 images pass"
        assert mask[found.rows].all()
        assert recall(found.rows, exact) >= (1.0 if kind == "flat" or exact_below else 0.9)


def test_the_selector_is_used_inside_faiss(tmp_path, monkeypatch):
    """A filter narrows the faiss search itself (an IDSelector in its SearchParameters), not a top-k afterwards."""
    gallery, queries, _ = clustered(500)
    index = make(tmp_path, "flat", gallery)
    seen = []
    faiss_index = index.faiss
    original = faiss_index.search

    def spy(x, k, params=None, **kwargs):
        seen.append(params)
        return original(x, k, params=params, **kwargs)

    monkeypatch.setattr(type(faiss_index), "search", lambda self, x, k, params=None: spy(x, k, params=params))
    mask = np.zeros(len(index), bool)
    mask[::50] = True
    found = nearest(index, queries[:2], TOP_K, passing=mask)
    assert seen[-1] is not None and seen[-1].sel is not None
    assert mask[found.rows].all() and (found.rows >= 0).all()


def test_own_copies_are_left_out_and_replaced(tmp_path):
    gallery, _, _ = clustered(300)
    index = make(tmp_path, "flat", gallery)
    found = nearest(index, gallery[:3], 5, exclude=[[0], [1], [2]])
    for i in range(3):
        assert i not in found.rows[i] and (found.rows[i] >= 0).all()


def test_query_dimension_must_match(tmp_path):
    gallery, queries, _ = clustered(100)
    index = make(tmp_path, "flat", gallery)
    with pytest.raises(GalleryIndexError, match="query embeddings are 16-d, the index .* holds 32-d"):
        nearest(index, queries[:, :16], 5)
    with pytest.raises(GalleryIndexError, match="NaN/inf in rows \\[1\\]"):
        bad = queries[:2].copy()
        bad[1, 3] = np.nan
        nearest(index, bad, 5)


def test_a_search_expecting_another_kind_or_input_size_is_refused_naming_both(tmp_path):
    """The searcher's ``kind=`` / ``height=`` / ``width=`` are checked against the index before any query is read."""
    gallery, _, _ = clustered(100)
    index = index_from_embeddings(tmp_path / "flat", gallery, [f"{i}.jpg" for i in range(100)], random_probabilities(100),
                                  height=64, width=32)
    with pytest.raises(GalleryIndexError, match=r"flat is a flat index, the search asks for kind=hnsw; pass kind=flat"):
        search(index, tmp_path / "no-queries", kind="hnsw")
    with pytest.raises(GalleryIndexError, match=r"built at input size 64x32, the search asks for 128x64"):
        search(index, tmp_path / "no-queries", height=128, width=64)


def test_a_filter_passing_nothing_gives_no_rows(tmp_path):
    gallery, queries, _ = clustered(100)
    index = make(tmp_path, "hnsw", gallery)
    found = nearest(index, queries, 5, passing=np.zeros(len(index), bool))
    assert (found.rows == -1).all() and np.isinf(found.distances).all()


def test_too_few_candidates_are_completed_by_an_exact_search(tmp_path, monkeypatch):
    """hnsw walking a narrow beam meets few images that pass a rare filter: those queries are searched again exactly."""
    import src.retrieval.kinds
    import src.retrieval.search

    gallery, queries, _ = clustered(2000)
    index = make(tmp_path, "hnsw", gallery)
    mask = np.zeros(len(index), bool)
    mask[::100] = True  # 1%
    monkeypatch.setattr(src.retrieval.kinds, "MAX_EF_SEARCH", TOP_K)  # no widening of the beam
    calls = []
    original = src.retrieval.search._exact
    monkeypatch.setattr(src.retrieval.search, "_exact", lambda *a: calls.append(len(a[1])) or original(*a))
    found = nearest(index, queries, TOP_K, passing=mask, exact_below=0, ef_search=1)
    assert calls and 0 < calls[0] <= len(queries)
    exact, _ = dense(gallery, queries, TOP_K, rows=np.flatnonzero(mask))
    assert (found.rows >= 0).all() and mask[found.rows].all()
    assert recall(found.rows, exact) >= 0.9


def test_every_match_scores_its_plain_distance_whatever_reorders_the_list(world, gallery, tmp_path):  # noqa: F811
    """P(same identity) comes from the calibrated plain embedding distance: re-ranking or a filter reorders the list
    but never changes a pair's probability; a checkpoint without calibration gives none."""
    import shutil

    from src.metrics.verification import p_same
    from src.release import add_calibration
    from src.retrieval.outputs import format_results, results_frame
    from tests.retrieval.worlds import build

    calibration = {"method": "isotonic", "distance": [0.0, 0.5, 1.0, 2.0], "p_same": [1.0, 0.6, 0.2, 0.0],
                   "operating_points": {}}
    ckpt = tmp_path / "calibrated.ckpt"
    shutil.copyfile(world["ckpt"], ckpt)
    add_calibration(ckpt, {"plain": calibration})
    build(world, gallery, tmp_path / "index", ckpt=ckpt)
    query = sorted(gallery.iterdir())[0]
    plain = search(tmp_path / "index", query, top_k=5)
    reranked = search(tmp_path / "index", query, top_k=5, postprocess={"rerank": {"enabled": True, "k1": 4, "k2": 2,
                                                                                   "lambda_value": 0.3}})
    for result in (plain, reranked):
        assert result.p_same is not None and len(result.p_same[0]) == len(result.matches[0])
    by_row = {row: p for (row, _), p in zip(plain.matches[0], plain.p_same[0])}
    for (row, _), p in zip(reranked.matches[0], reranked.p_same[0]):
        if row in by_row:
            assert p == pytest.approx(by_row[row], abs=1e-4)
    assert plain.p_same[0] == pytest.approx(list(p_same(calibration, [d for _, d in plain.matches[0]])), abs=1e-4)
    assert "p_same" in results_frame(plain).columns and "p_same" in format_results(plain)
    from src.data.attributes import describe_labels
    best_row = plain.matches[0][0][0]
    assert describe_labels(plain.index.attributes[best_row]) in format_results(plain).splitlines()[4]
    build(world, gallery, tmp_path / "uncalibrated")
    assert search(tmp_path / "uncalibrated", query, top_k=5).p_same is None

