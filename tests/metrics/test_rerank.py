"""Tests for src.metrics.rerank against torchreid 0.2.5 ``re_ranking``."""

import numpy as np
import pytest
import torch

from src.metrics.distance import pairwise_distance
from src.metrics.rank import evaluate_rank
from src.metrics.rerank import re_ranking, re_ranking_from_features


def distance_triplet(qf, gf, metric="euclidean"):
    return tuple(pairwise_distance(a, b, metric).numpy() for a, b in ((qf, gf), (qf, qf), (gf, gf)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5), (7, 3, 0.0), (3, 10, 0.9), (1, 2, 0.3)])
def test_matches_torchreid(ref_rerank, make_data, seed, k1, k2, lam):
    qf, gf, *_ = make_data(30, 200, 20, 4, 16, seed)
    qg, qq, gg = distance_triplet(qf, gf)
    expected = ref_rerank.re_ranking(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
    got = re_ranking(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam, block=23)
    assert isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(got - expected).max() < 1e-5  # in practice float32 rounding only


def test_float64_cosine_and_asymmetric_inputs(ref_rerank, make_data):
    qf, gf, *_ = make_data(25, 120, 10, 3, 8, 9)
    qg, qq, gg = (x.astype(np.float64) for x in distance_triplet(qf, gf, "cosine"))
    gg = gg + 0.01 * np.random.default_rng(0).random(gg.shape)  # the reference reads columns, not rows
    expected = ref_rerank.re_ranking(qg, qq, gg)
    np.testing.assert_allclose(re_ranking(qg, qq, gg), expected, atol=1e-4, rtol=0)


def test_torch_in_torch_out_and_from_features(make_data):
    qf, gf, *_ = make_data(20, 90, 10, 3, 8, 2)
    qg, qq, gg = distance_triplet(qf, gf)
    from_numpy = re_ranking(qg, qq, gg)
    from_torch = re_ranking(*(torch.from_numpy(x) for x in (qg, qq, gg)))
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)
    np.testing.assert_allclose(re_ranking_from_features(qf, gf, block=16).numpy(), from_numpy, atol=1e-5)


def test_block_size_does_not_change_result(make_data):
    qf, gf, *_ = make_data(20, 90, 10, 3, 8, 3)
    qg, qq, gg = distance_triplet(qf, gf)
    np.testing.assert_allclose(re_ranking(qg, qq, gg, block=1), re_ranking(qg, qq, gg, block=1000), atol=1e-6)


def test_rerank_helps_on_structured_data(make_data):
    qf, gf, qp, gp, qc, gc = make_data(60, 400, 30, 4, 16, 0, noise=1.3)
    qg, qq, gg = distance_triplet(qf, gf)
    base = evaluate_rank(qg, qp, gp, qc, gc)["mAP"]
    assert evaluate_rank(re_ranking(qg, qq, gg), qp, gp, qc, gc)["mAP"] > base


def test_bad_shapes():
    with pytest.raises(ValueError, match="expected shapes"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="at least one query"):
        re_ranking(np.zeros((0, 3)), np.zeros((0, 0)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k1 and k2"):
        re_ranking(np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 3)), k1=0)
