"""src/metrics/postprocess.py: query expansion / re-ranking switched by the postprocess options, and own-copy
exclusion by content hash."""

from __future__ import annotations

import math

import pytest
import torch

from src.metrics.distance import pairwise_distance
from src.metrics.postprocess import exclude_own_copies, own_copy_columns, retrieval_distances
from src.metrics.query_expansion import query_expansion
from src.metrics.rerank import re_ranking_from_features

OFF = {"rerank": {"enabled": False, "k1": 20, "k2": 6, "lambda_value": 0.3},
       "query_expansion": {"enabled": False, "top_k": 5, "alpha": 3.0, "expand_gallery": False}}


@pytest.fixture
def features():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(3, 8, generator=generator), torch.randn(10, 8, generator=generator)


@pytest.mark.parametrize("postprocess", [None, {}, OFF])
def test_without_post_processing_the_distances_are_the_plain_ones(features, postprocess):
    query, gallery = features
    distances = retrieval_distances(query, gallery, "euclidean", postprocess)
    expected = torch.cdist(query.double(), gallery.double()).float()
    torch.testing.assert_close(distances, expected, atol=1e-4, rtol=1e-4)


def test_query_expansion_expands_before_the_distances(features):
    query, gallery = features
    options = {**OFF, "query_expansion": {"enabled": True, "top_k": 3, "alpha": 0.0, "expand_gallery": False}}
    expanded_q, expanded_g = query_expansion(query, gallery, top_k=3, alpha=0.0)
    expected = pairwise_distance(expanded_q, expanded_g, "cosine")
    torch.testing.assert_close(retrieval_distances(query, gallery, "cosine", options), expected)
    assert not torch.allclose(expected, pairwise_distance(query, gallery, "cosine"))


def test_query_expansion_top_k_is_capped_by_the_gallery_size(features):
    query, gallery = features[0], features[1][:2]
    options = {**OFF, "query_expansion": {"enabled": True, "top_k": 50, "alpha": 3.0, "expand_gallery": True}}
    # expand_gallery uses each gallery image's neighbours besides itself: at most len(gallery) - 1
    expected = pairwise_distance(*query_expansion(query, gallery, top_k=1, alpha=3.0, expand_gallery=True), "cosine")
    torch.testing.assert_close(retrieval_distances(query, gallery, "cosine", options), expected)


def test_reranking_replaces_the_distances(features):
    query, gallery = features
    options = {**OFF, "rerank": {"enabled": True, "k1": 4, "k2": 2, "lambda_value": 0.3}}
    expected = re_ranking_from_features(query, gallery, "euclidean", k1=4, k2=2, lambda_value=0.3)
    torch.testing.assert_close(torch.as_tensor(retrieval_distances(query, gallery, "euclidean", options)),
                               torch.as_tensor(expected))


def test_own_copy_columns_group_the_gallery_by_content():
    assert own_copy_columns(["a", "b", "a", "c", "a"]) == {"a": [0, 2, 4], "b": [1], "c": [3]}
    assert own_copy_columns([]) == {}


def test_own_copies_are_pushed_to_infinity_and_the_input_is_left_alone():
    block = torch.arange(8, dtype=torch.float32).view(2, 4)
    original = block.clone()
    columns = own_copy_columns(["x", "y", "x", "z"])
    out, excluded = exclude_own_copies(block, ["x", "w"], columns)
    assert excluded == [[0, 2], []]
    assert out[0].tolist() == [math.inf, 1.0, math.inf, 3.0] and out[1].tolist() == [4.0, 5.0, 6.0, 7.0]
    assert torch.equal(block, original)  # a copy was changed, not the caller's block
    same, none = exclude_own_copies(block, ["w", "v"], columns)
    assert same is block and none == [[], []]  # nothing to exclude: no copy made
