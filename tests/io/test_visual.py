"""src/io/visual.py: rank grids (borders coloured by identity), the HTML report, thumbnails and captions (the RankLists
callback that draws them: tests/callbacks/test_rank_lists.py)."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from src.io.visual import (
    CORRECT_COLOUR,
    QUERY_COLOUR,
    WRONG_COLOUR,
    RankRow,
    Tile,
    html_report,
    rank_figure,
    save_png,
    short_caption,
    thumbnail,
)
from src.metrics.rank import evaluate_rank, query_rank_lists


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def pixels_near(image: Image.Image, colour: str, tolerance: int = 30) -> int:
    array = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(array - rgb(colour)).max(axis=2) <= tolerance).sum())


def grey_tile(seed: int) -> np.ndarray:
    """A grey-ish random image (no pixel near the border colours)."""
    return np.random.default_rng(seed).integers(90, 170, size=(128, 64, 3), dtype=np.uint8)


def rows(correct: list[bool | None], label: str = "") -> list[RankRow]:
    matches = [Tile(grey_tile(i), f"#{i + 1} 0.{i}", "red/black\nadult male", c) for i, c in enumerate(correct)]
    return [RankRow(Tile(grey_tile(99), "query", "q.jpg"), matches, label)]


def test_borders_are_green_for_same_identity_and_red_otherwise(tmp_path):
    mixed = save_png(tmp_path / "mixed.png", rank_figure(rows([True, False, False, True, False]), title="t"))
    unknown = save_png(tmp_path / "unknown.png", rank_figure(rows([None] * 5)))
    more_green = save_png(tmp_path / "green.png", rank_figure(rows([True, True, True, True, False])))
    with Image.open(mixed) as a, Image.open(unknown) as b, Image.open(more_green) as c:
        green, red = pixels_near(a, CORRECT_COLOUR), pixels_near(a, WRONG_COLOUR)
        assert green > 500 and red > 500
        assert red / green == pytest.approx(3 / 2, rel=0.15)  # three red frames, two green ones
        assert pixels_near(a, QUERY_COLOUR) > 200
        assert pixels_near(b, CORRECT_COLOUR) == 0 and pixels_near(b, WRONG_COLOUR) == 0
        assert pixels_near(c, CORRECT_COLOUR) / pixels_near(c, WRONG_COLOUR) == pytest.approx(4, rel=0.15)
        assert a.size[0] > 600 and a.size[1] > 200


def test_matches_wrap_onto_lines(tmp_path):
    one_line = rank_figure(rows([None] * 10), per_line=10)
    two_lines = rank_figure(rows([None] * 20), per_line=10)
    assert one_line.get_size_inches()[0] == pytest.approx(two_lines.get_size_inches()[0])
    assert two_lines.get_size_inches()[1] > 1.8 * one_line.get_size_inches()[1] - 0.5
    assert len(two_lines.axes) == 21
    plt.close("all")


def test_html_report_is_self_contained(tmp_path):
    page = html_report(rows([True, False, None], label="<b>query</b>"), "Search & report", {"filter": "upcolor=red"})
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(uris) == 4
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as image:
            assert image.format == "JPEG" and image.size == (64, 128)
    assert "<b>query</b>" not in page and "&lt;b&gt;query&lt;/b&gt;" in page
    assert "Search &amp; report" in page and "upcolor=red" in page
    assert CORRECT_COLOUR in page and WRONG_COLOUR in page
    assert "http" not in page.replace("charset", "")  # nothing fetched from elsewhere


def test_thumbnail_letterboxes_and_survives_bad_files(tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (255, 0, 0)).save(wide)
    image = thumbnail(wide)
    assert image.shape == (128, 64, 3)
    assert (image[64, 32] == [255, 0, 0]).all() and not (image[2, 32] == [255, 0, 0]).all()
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert thumbnail(tmp_path / "bad.jpg").shape == (128, 64, 3)


def test_short_caption():
    labels = [2, 1, 0, 0, 1, 0, 0, 0, 1, 1, 2, 9]  # adult, backpack, hat, female, upper red, lower multicolour
    assert short_caption(labels) == "red/multi\nadult female\nbackpack hat"


# ------------------------------------------------------------ the per-query lists the RankLists callback draws
def retrieval(seed: int = 0, num_query: int = 12, num_gallery: int = 40):
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(1, 7, num_gallery)
    g_camids = rng.integers(1, 4, num_gallery)
    q_pids = rng.integers(1, 7, num_query)
    q_camids = rng.integers(1, 4, num_query)
    distmat = torch.rand(num_query, num_gallery, generator=torch.Generator().manual_seed(seed))
    distmat[torch.from_numpy(q_pids[:, None] == g_pids[None, :])] -= 0.3  # better than chance
    return distmat, q_pids, g_pids, q_camids, g_camids


def test_per_query_average_precision_matches_evaluate_rank():
    distmat, q_pids, g_pids, q_camids, g_camids = retrieval()
    g_pids[:3] = -1  # junk
    aps, first, lists = query_rank_lists(distmat, q_pids, g_pids, q_camids, g_camids, top_k=5)
    expected = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    valid = ~np.isnan(aps)
    assert valid.sum() == expected["num_valid_queries"]
    assert aps[valid].mean() == pytest.approx(expected["mAP"], abs=1e-12)
    assert (first[valid] >= 1).all() and (first[~valid] == 0).all()
    rank1 = np.mean(first[valid] == 1)
    assert rank1 == pytest.approx(expected["rank1"])
    for q, top in enumerate(lists):
        assert len(top) == 5 and (np.diff(distmat[q, top].numpy()) >= 0).all()
        assert not ((g_pids[top] == q_pids[q]) & (g_camids[top] == q_camids[q])).any()
        assert not (g_pids[top] == -1).any()
