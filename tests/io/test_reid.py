"""src/io/reid.py: ``reid_test.txt`` lines, the gallery images within the threshold of each query, nearest first,
never the query's own copy."""

from __future__ import annotations

import pytest
import torch

from src.io.reid import reid_lines, write_reid_txt

# one-dimensional features: the euclidean distance is the absolute difference, easy to check by hand
GALLERY = torch.tensor([[0.0], [3.0], [1.0], [10.0], [2.5]])
GALLERY_NAMES = ["g0.jpg", "g1.jpg", "g2.jpg", "g3.jpg", "g4.jpg"]


def test_each_query_lists_the_gallery_within_the_threshold_nearest_first():
    queries = torch.tensor([[0.2], [2.9], [20.0]])
    lines = reid_lines(queries, GALLERY, ["a.jpg", "b.jpg", "c.jpg"], GALLERY_NAMES, threshold=1.5)
    # a at 0.2: g0 (0.2), g2 (0.8); b at 2.9: g1 (0.1), g4 (0.4), g2 (1.9 > 1.5: out); c: nothing within 1.5
    assert lines == ["a.jpg: g0.jpg, g2.jpg", "b.jpg: g1.jpg, g4.jpg", "c.jpg: "]


def test_blocks_of_queries_give_the_same_lines():
    queries = torch.linspace(-1, 11, 13).unsqueeze(1)
    names = [f"q{i}.jpg" for i in range(13)]
    whole = reid_lines(queries, GALLERY, names, GALLERY_NAMES, threshold=2.0)
    assert reid_lines(queries, GALLERY, names, GALLERY_NAMES, threshold=2.0, chunk_size=4) == whole


def test_the_query_own_copy_is_never_reported_but_other_images_are():
    queries = torch.tensor([[1.0], [2.5]])
    gallery_hashes = ["h0", "h1", "hq", "h3", "h4"]  # g2 holds the first query's bytes
    lines = reid_lines(queries, GALLERY, ["q.jpg", "r.jpg"], GALLERY_NAMES, threshold=1.2,
                       query_hashes=["hq", "hr"], gallery_hashes=gallery_hashes)
    assert lines == ["q.jpg: g0.jpg", "r.jpg: g4.jpg, g1.jpg"]
    without = reid_lines(queries, GALLERY, ["q.jpg", "r.jpg"], GALLERY_NAMES, threshold=1.2)
    assert without[0] == "q.jpg: g2.jpg, g0.jpg"


def test_cosine_distances_are_used_when_asked():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    lines = reid_lines(torch.tensor([[3.0, 0.1]]), gallery, ["q.jpg"], ["same.jpg", "orthogonal.jpg", "opposite.jpg"],
                       threshold=0.5, metric="cosine")
    assert lines == ["q.jpg: same.jpg"]  # 1 - cos: about 0, 0.97, 2


def test_an_empty_query_set_is_refused():
    with pytest.raises(ValueError, match="empty query set"):
        reid_lines(torch.zeros(0, 1), GALLERY, [], GALLERY_NAMES, threshold=1.0)


def test_the_file_ends_with_a_newline_and_keeps_non_utf8_names(tmp_path):
    name = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
    path = write_reid_txt(tmp_path / "reid_test.txt", [f"{name}: g1.jpg", "b.jpg: "])
    assert path.read_bytes() == b"caf\xe9.jpg: g1.jpg\nb.jpg: \n"
