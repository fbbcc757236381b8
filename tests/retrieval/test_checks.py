"""A search's request checked against the index before any network or image: filter names and values, re-ranking
and query-expansion neighbour counts against the gallery size (src/retrieval/checks.py)."""

from __future__ import annotations

import pytest

from src.errors import ConfigError
from src.retrieval.build import index_from_embeddings
from src.retrieval.checks import check_search
from src.retrieval.filtering import FilterError
from src.retrieval.search import search
from tests.retrieval.worlds import clustered, random_probabilities


@pytest.fixture
def index(tmp_path):
    gallery, _, _ = clustered(30)
    return index_from_embeddings(tmp_path / "flat", gallery, [f"{i}.jpg" for i in range(30)], random_probabilities(30))


def rerank(k1=20, k2=6, enabled=True):
    return {"rerank": {"enabled": enabled, "k1": k1, "k2": k2, "lambda_value": 0.3}}


def test_a_valid_request_returns_the_parsed_filter(index):
    conditions = check_search(index, filter="upcolor=red|white,gender=female", postprocess=rerank(30, 30))
    assert set(conditions) == {"upcolor", "gender"} and len(conditions["upcolor"]) == 2
    assert check_search(index, postprocess=rerank(1000, 0, enabled=False)) == {}  # switched off: not checked


@pytest.mark.parametrize("postprocess, message", [
    (rerank(k1=31), r"postprocess.rerank.k1=31: more neighbours than the 30 gallery images"),
    (rerank(k2=0), r"postprocess.rerank.k2=0: expected a whole number >= 1"),
    ({"query_expansion": {"enabled": True, "top_k": 40}}, r"postprocess.query_expansion.top_k=40: more neighbours"),
])
def test_neighbour_counts_above_the_gallery_or_below_one_are_refused(index, postprocess, message):
    with pytest.raises(ConfigError, match=message):
        check_search(index, postprocess=postprocess)


def test_search_refuses_a_bad_filter_before_reading_any_query(index, tmp_path):
    with pytest.raises(FilterError, match="unknown attribute 'colour'"):
        search(index, tmp_path / "no-queries", filter="colour=red")  # the query folder does not exist
    with pytest.raises(FilterError, match="unknown value 'orange' for attribute 'upcolor'"):
        search(index, tmp_path / "no-queries", filter="upcolor=orange")
    with pytest.raises(ConfigError, match="rerank.k1=100"):
        search(index, tmp_path / "no-queries", postprocess=rerank(k1=100))
