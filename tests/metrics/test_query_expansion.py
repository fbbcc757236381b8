"""Tests for src.metrics.query_expansion."""

import pytest
import torch
import torch.nn.functional as F

from src.metrics.query_expansion import query_expansion


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_average_qe_by_hand():
    q = unit([1.0, 0.0])
    g = unit([1.0, 1.0], [0.0, 1.0], [-1.0, 0.2])
    new_q, new_g = query_expansion(q, g, top_k=2, alpha=0.0)
    expected = F.normalize(q[0] + g[0] + g[1], dim=0)  # two most similar: g0 (cos .71), g1 (cos 0)
    assert torch.allclose(new_q[0], expected, atol=1e-6)
    assert torch.allclose(new_g, g)  # gallery only normalised


def test_alpha_weights_by_hand():
    q = unit([1.0, 0.0])
    g = unit([1.0, 1.0], [1.0, -3.0], [-1.0, 0.0])
    c0, c1 = g[0, 0].item(), g[1, 0].item()  # cosines with q
    new_q, _ = query_expansion(q * 5, g * 2, top_k=2, alpha=3.0)  # scale must not matter
    expected = F.normalize(q[0] + c0**3 * g[0] + c1**3 * g[1], dim=0)
    assert torch.allclose(new_q[0], expected, atol=1e-6)


def test_negative_similarities_get_zero_weight():
    q = unit([1.0, 0.0])
    g = unit([-1.0, 0.1], [-1.0, -0.1])
    new_q, _ = query_expansion(q, g, top_k=2, alpha=1.0)
    assert torch.allclose(new_q, q, atol=1e-6)


def test_gallery_expansion_and_chunking():
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(17, 6, generator=gen), torch.randn(40, 6, generator=gen)
    a = query_expansion(q, g, top_k=3, alpha=2.0, expand_gallery=True, chunk_size=4)
    b = query_expansion(q, g, top_k=3, alpha=2.0, expand_gallery=True, chunk_size=1000)
    assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)
    assert torch.allclose(a[0].norm(dim=1), torch.ones(17)) and torch.allclose(a[1].norm(dim=1), torch.ones(40))
    gn = F.normalize(g, dim=1)
    sim, idx = torch.topk(gn @ gn.T, 4, dim=1)
    expected_g = F.normalize(torch.einsum("gk,gkd->gd", sim.clamp_min(0) ** 2, gn[idx]), dim=1)
    assert torch.allclose(a[1], expected_g, atol=1e-6)
    assert not torch.allclose(a[1], gn, atol=1e-3)


def test_invalid_arguments():
    q, g = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="top_k"):
        query_expansion(q, g, top_k=0)
    with pytest.raises(ValueError, match="too large"):
        query_expansion(q, g, top_k=4)
    with pytest.raises(ValueError, match="alpha"):
        query_expansion(q, g, alpha=-1)
