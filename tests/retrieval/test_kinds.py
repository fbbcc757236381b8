"""src/retrieval/kinds.py: index kinds, their parameters (explicit or chosen from the gallery size), the faiss
objects they map to, and faiss's squared L2 back to the project's distances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from src.retrieval.kinds import MAX_EF_SEARCH, IndexKindError, of, prepared, structure, to_distance


def test_an_unknown_kind_lists_the_known_ones():
    assert of("hnsw").name == "hnsw"
    with pytest.raises(IndexKindError, match="index.kind='annoy': expected one of flat, ivf_pq, hnsw"):
        of("annoy")


def test_unset_parameters_are_chosen_and_set_ones_kept():
    assert of("hnsw").resolve({"m": None, "ef_search": 100}, 1000, 64) == {"m": 32, "ef_construction": 40, "ef_search": 100}
    assert of("flat").resolve(None, 10, 64) == {}


@pytest.mark.parametrize("kind, requested, message", [
    ("hnsw", {"nlist": 4}, "index.hnsw has no parameter nlist; its parameters are: m, ef_construction, ef_search"),
    ("flat", {"m": 8}, "index.flat has no parameter m; its parameters are: none"),
    ("ivf_pq", {"m": 5}, "index.ivf_pq.m=5 does not divide the embedding dimension 64"),
    ("ivf_pq", {"nbits": 8}, r"ivf_pq with nlist=.*, nbits=8 needs at least 256 images, the gallery has 100; use index.kind=flat"),
    ("hnsw", {"ef_search": 0}, "index.hnsw: ef_search=0 must be positive"),
])
def test_bad_parameters_are_refused_naming_them(kind, requested, message):
    with pytest.raises(IndexKindError, match=message):
        of(kind).resolve(requested, 100, 64)


def test_refine_zero_is_allowed():
    assert of("ivf_pq").resolve({"refine": 0}, 5000, 64)["refine"] == 0


@pytest.mark.parametrize("n, dim", [(100, 64), (5000, 128), (100_000, 256), (1_000_000, 96)])
def test_ivf_pq_defaults_fit_the_gallery(n, dim):
    params = of("ivf_pq").resolve({}, n, dim)
    assert dim % params["m"] == 0 and dim / params["m"] <= 8  # about 8 dimensions per code
    assert params["nlist"] == 1 or params["nlist"] * 39 <= n  # at least 39 training points per k-means cell
    assert params["nlist"] <= params["train_size"] <= n and 2 ** params["nbits"] <= n
    assert 1 <= params["nprobe"] <= params["nlist"]


def test_the_hnsw_beam_grows_with_the_gallery_as_benchmarked():
    # bench/bench_faiss_index.py: recall@10 >= 0.95 needs ef_search 64 at 100k images and 512 at 1M
    assert of("hnsw").auto_params(100_000, 256)["ef_search"] == 64
    assert of("hnsw").auto_params(1_000_000, 256)["ef_search"] == 512
    assert of("hnsw").auto_params(10**9, 256)["ef_search"] == MAX_EF_SEARCH


def test_factory_strings_and_file_shaping_parameters():
    assert of("flat").factory({}) == "IDMap,Flat"
    assert of("hnsw").factory({"m": 16}) == "IDMap,HNSW16"
    assert of("ivf_pq").factory({"nlist": 64, "m": 8, "nbits": 4}) == "IVF64,PQ8x4"
    params = {"nlist": 64, "m": 8, "nbits": 4, "train_size": 1000, "nprobe": 5, "refine": 10}
    assert structure(params) == {"nlist": 64, "m": 8, "nbits": 4, "train_size": 1000}
    assert [of(k).trains for k in ("flat", "ivf_pq", "hnsw")] == [False, True, False]
    assert [of(k).removes for k in ("flat", "ivf_pq", "hnsw")] == [True, True, False]


def test_a_filter_widens_the_search_within_its_limits():
    ivf = of("ivf_pq").search_parameters({"nlist": 64, "nprobe": 4}, k=10, selectivity=0.1)
    assert ivf.nprobe == 40
    assert of("ivf_pq").search_parameters({"nlist": 64, "nprobe": 4}, k=10, selectivity=0.01).nprobe == 64  # all cells
    hnsw = of("hnsw").search_parameters({"ef_search": 64}, k=10, selectivity=0.25)
    assert hnsw.efSearch == 256
    assert of("hnsw").search_parameters({"ef_search": 64}, k=10, selectivity=1e-6).efSearch == MAX_EF_SEARCH
    assert of("hnsw").search_parameters({"ef_search": 8}, k=50).efSearch == 50  # never fewer candidates than k
    assert of("flat").search_parameters({}, k=10) is None


def test_ivf_pq_asks_for_refine_times_k_candidates():
    assert of("ivf_pq").candidates({"refine": 10}, 5) == 50
    assert of("ivf_pq").candidates({"refine": 0}, 5) == 5
    assert of("hnsw").candidates({"ef_search": 64}, 5) == 5


def test_prepared_vectors_are_float32_and_unit_length_for_cosine():
    vectors = np.array([[3.0, 4.0], [0.0, 2.0]])
    cosine = prepared(vectors, "cosine")
    assert cosine.dtype == np.float32 and np.allclose(cosine, [[0.6, 0.8], [0.0, 1.0]])
    assert np.array_equal(prepared(vectors, "euclidean"), vectors.astype(np.float32))
    assert vectors[0, 0] == 3.0  # the caller's array is left alone


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_a_flat_index_gives_the_exact_distances(metric):
    rng = np.random.default_rng(0)
    gallery, query = rng.normal(size=(20, 8)), rng.normal(size=(3, 8))
    index = of("flat").new_index({}, 8)
    index.add_with_ids(prepared(gallery, metric), np.arange(100, 120))
    squared, ids = index.search(prepared(query, metric), 20)
    distances = to_distance(squared, metric)
    if metric == "euclidean":
        expected = np.linalg.norm(query[:, None] - gallery[None], axis=2)
    else:
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
        expected = 1 - unit(query) @ unit(gallery).T
    assert np.allclose(distances, np.take_along_axis(expected, ids - 100, axis=1), atol=1e-5)
    assert np.all(np.diff(distances, axis=1) >= -1e-6)  # nearest first


def test_squared_l2_rounding_below_zero_is_a_zero_distance():
    assert to_distance(np.array([-1e-7, 4.0]), "euclidean").tolist() == [0.0, 2.0]
    assert math.isclose(float(to_distance(np.array([0.5]), "cosine")[0]), 0.25)


def test_new_indexes_are_configured_for_their_kind():
    hnsw = of("hnsw").new_index({"m": 8, "ef_construction": 17}, 16)
    from src.retrieval.kinds import hnsw_index

    assert hnsw_index(hnsw).hnsw.efConstruction == 17
    ivf = of("ivf_pq").new_index({"nlist": 4, "m": 4, "nbits": 4}, 16)
    assert not ivf.is_trained and ivf.d == 16
