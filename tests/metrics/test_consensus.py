import numpy as np
import pytest
import torch

from src.metrics.consensus import neighbour_consensus, neighbour_indices


def brute_force(embeddings: torch.Tensor, probs: dict, k: int, metric: str) -> dict:
    x = torch.nn.functional.normalize(embeddings, dim=1) if metric == "cosine" else embeddings
    distances = torch.cdist(x.double(), x.double())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.argsort(1)[:, :k]
    return {n: torch.stack([(p[i] + p[neighbours[i]].sum(0)) / (k + 1) for i in range(len(p))]) for n, p in probs.items()}


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_equals_brute_force_across_chunks(metric, k):
    generator = torch.Generator().manual_seed(k)
    embeddings = torch.randn(37, 8, generator=generator)
    probs = {"a": torch.rand(37, 3, generator=generator).softmax(1), "b": torch.rand(37, 10, generator=generator).softmax(1)}
    got = neighbour_consensus(embeddings, probs, k, metric, chunk_size=5)
    want = brute_force(embeddings, probs, k, metric)
    for name in probs:
        torch.testing.assert_close(got[name], want[name].float(), atol=1e-6, rtol=0)
        torch.testing.assert_close(got[name].sum(1), torch.ones(37), atol=1e-5, rtol=0)


def test_neighbours_of_the_same_person_outvote_a_wrong_picture():
    # three people, four pictures each, tight clusters; one picture of person 1 is misread
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    embeddings = centres.repeat_interleave(4, 0) + 0.1 * torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    truth = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    probs = torch.nn.functional.one_hot(truth, 2).float() * 0.8 + 0.1
    probs[5] = torch.tensor([0.9, 0.1])
    smoothed = neighbour_consensus(embeddings, {"bag": probs}, k=3)["bag"]
    assert (probs.argmax(1) != truth).sum() == 1
    assert torch.equal(smoothed.argmax(1), truth)


def test_self_is_never_its_own_neighbour_even_with_duplicates():
    embeddings = torch.tensor([[0.0], [0.0], [5.0], [9.0]])
    indices = neighbour_indices(embeddings, 1)
    assert indices[:, 0].tolist() == [1, 0, 3, 2]


def test_k_zero_returns_the_input_and_bad_arguments_are_named():
    probs = {"hat": torch.rand(4, 2)}
    assert neighbour_consensus(torch.randn(4, 3), probs, 0) is probs
    with pytest.raises(ValueError, match=r"consensus k must be in \[1, 3\] for 4 images, got 4"):
        neighbour_consensus(torch.randn(4, 3), probs, 4)
    with pytest.raises(ValueError, match="hat: 4 probability rows for 5 embeddings"):
        neighbour_consensus(torch.randn(5, 3), probs, 2)


def test_chunked_equals_one_block_at_scale():
    # 3,000 images in chunks of 256 give what one 3,000 x 3,000 block gives
    embeddings = torch.randn(3000, 16, generator=torch.Generator().manual_seed(1))
    probs = {"age": torch.rand(3000, 4, generator=torch.Generator().manual_seed(2))}
    chunked = neighbour_consensus(embeddings, probs, 5, chunk_size=256)["age"]
    whole = neighbour_consensus(embeddings, probs, 5, chunk_size=4096)["age"]
    assert np.allclose(chunked.numpy(), whole.numpy(), atol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_reranked_neighbours_follow_the_reranked_distances(metric):
    from src.metrics.rerank import re_ranking_from_features

    generator = torch.Generator().manual_seed(3)
    embeddings = torch.randn(6, 4, generator=generator).repeat_interleave(5, 0) + 0.3 * torch.randn(30, 4, generator=generator)
    reranked = re_ranking_from_features(embeddings, embeddings, metric).double()
    reranked.fill_diagonal_(float("inf"))
    got = neighbour_indices(embeddings, 4, metric, chunk_size=7, rerank=True)
    assert not (got == torch.arange(30)[:, None]).any()
    # the same distances as the brute-force order (ties may swap indices, never distances)
    torch.testing.assert_close(reranked.gather(1, got), reranked.sort(1).values[:, :4])
    assert not torch.equal(got, neighbour_indices(embeddings, 4, metric))
