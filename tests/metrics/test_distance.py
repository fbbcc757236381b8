"""Tests for src.metrics.distance."""

import pytest
import torch

from src.metrics.distance import chunked_topk, iter_distance_chunks, pairwise_distance


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(0)
    return torch.randn(13, 8, generator=g), torch.randn(29, 8, generator=g)


def test_euclidean_is_true_l2(feats):
    q, g = feats
    expected = torch.cdist(q.double(), g.double())
    assert torch.allclose(pairwise_distance(q, g).double(), expected, atol=1e-5)
    # not squared: a 3-4-5 triangle
    d = pairwise_distance(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]))
    assert d.item() == pytest.approx(5.0)


def test_cosine(feats):
    q, g = feats
    expected = 1 - torch.nn.functional.cosine_similarity(q[:, None], g[None], dim=2)
    assert torch.allclose(pairwise_distance(q, g, "cosine"), expected, atol=1e-6)
    # scale invariant
    assert torch.allclose(pairwise_distance(3 * q, g, "cosine"), expected, atol=1e-6)


def test_numpy_and_float64_inputs(feats):
    q, g = feats
    d = pairwise_distance(q.double().numpy(), g.double().numpy())
    assert d.dtype == torch.float64
    assert torch.allclose(d, torch.cdist(q.double(), g.double()), atol=1e-10)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_chunks_match_full(feats, metric, chunk):
    q, g = feats
    full = pairwise_distance(q, g, metric)
    starts, blocks = zip(*iter_distance_chunks(q, g, metric, chunk))
    assert list(starts) == list(range(0, len(q), chunk))
    assert max(len(b) for b in blocks) <= chunk
    assert torch.allclose(torch.cat(blocks), full, atol=1e-5)


def test_chunked_topk(feats):
    q, g = feats
    values, indices = chunked_topk(q, g, k=5, chunk_size=4)
    full = pairwise_distance(q, g)
    ref_values, ref_indices = torch.topk(full, 5, dim=1, largest=False)
    assert torch.equal(indices, ref_indices)
    assert torch.allclose(values, ref_values, atol=1e-6)
    with pytest.raises(ValueError, match="k must be"):
        chunked_topk(q, g, k=30)


def test_validation_errors(feats):
    q, g = feats
    with pytest.raises(ValueError, match="2-D"):
        pairwise_distance(q[0], g)
    with pytest.raises(ValueError, match="feature dims differ"):
        pairwise_distance(q, g[:, :4])
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(q, g, "manhattan")
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_distance_chunks(q, g, chunk_size=0))


def test_nan_error_names_rows_and_images(feats):
    q, g = feats
    q = q.clone()
    q[3, 1] = float("nan")
    q[7, 0] = float("inf")
    names = [f"q_{i:04d}.jpg" for i in range(len(q))]
    with pytest.raises(ValueError, match=r"query features contain NaN/inf in 2 row\(s\): rows \[3, 7\]") as err:
        pairwise_distance(q, g, query_names=names)
    assert "q_0003.jpg" in str(err.value) and "q_0007.jpg" in str(err.value)
    g = g.clone()
    g[-1] = float("nan")
    with pytest.raises(ValueError, match=r"gallery features .* rows \[28\].*g28"):
        pairwise_distance(q[:2], g, gallery_names=[f"g{i}" for i in range(len(g))])
