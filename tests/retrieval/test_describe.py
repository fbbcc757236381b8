"""Search by description: the product of the described heads' probabilities, its top-k, its mAP, and the CLI
(``src.search`` with a filter and no query)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.data.attributes import HEAD_NAMES, HEADS, describe_labels
from src.retrieval.build import index_from_embeddings
from src.retrieval.describe import description_map, description_scores, search_description, top_by_score
from src.retrieval.filtering import FilterError, parse_filter
from tests.conftest import ROOT
from tests.retrieval.worlds import random_probabilities


def one_hot(attributes: np.ndarray, sharpness: float = 1.0) -> dict[str, np.ndarray]:
    """Per-head probabilities putting ``sharpness`` on the given class and the rest evenly on the others."""
    out = {}
    for i, head in enumerate(HEADS):
        rest = (1 - sharpness) / (head.num_classes - 1)
        p = np.full((len(attributes), head.num_classes), rest)
        p[np.arange(len(attributes)), attributes[:, i]] = sharpness
        out[head.name] = p
    return out


def test_scores_are_the_product_of_the_described_probabilities_alternatives_summed():
    probs = random_probabilities(50, seed=1)
    conditions = parse_filter("upcolor=red|white,gender=female,backpack=yes")
    up = HEADS[HEAD_NAMES.index("upcolor")].classes
    expected = ((probs["upcolor"][:, up.index("red")] + probs["upcolor"][:, up.index("white")])
                * probs["gender"][:, 1] * probs["backpack"][:, 1])
    np.testing.assert_allclose(description_scores(probs, conditions), expected, rtol=1e-6)
    with pytest.raises(FilterError, match="at least one attribute"):
        description_scores(probs, {})


def test_top_by_score_is_a_stable_descending_sort_among_passing_rows():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    passing = rng.random(200) < 0.5
    for k in (1, 7, 200):
        rows = np.flatnonzero(passing)
        expected = rows[np.lexsort((rows, -scores[rows]))][:k]
        assert [r for r, _ in top_by_score(scores, k, passing)] == expected.tolist()
    assert top_by_score(scores, 3, np.zeros(200, bool)) == []


def test_a_near_miss_ranks_above_an_image_without_the_attribute():
    attributes = np.zeros((3, len(HEADS)), np.int64)
    probs = one_hot(attributes, 0.9)
    up = HEADS[HEAD_NAMES.index("upcolor")].classes
    probs["upcolor"][1] = 0.0
    probs["upcolor"][1, up.index("red")], probs["upcolor"][1, 0] = 0.45, 0.55  # argmax not red, red close
    probs["upcolor"][2] = 0.0
    probs["upcolor"][2, up.index("red")], probs["upcolor"][2, 0] = 0.05, 0.95
    attributes[:, HEAD_NAMES.index("upcolor")] = 0
    result = search_description(probs, attributes, "upcolor=red", top_k=3)
    assert [r for r, _ in result.matches][:2] == [1, 2] and result.num_passing == 0
    # a hard filter on the same attribute keeps nothing
    assert search_description(probs, attributes, "upcolor=red", top_k=3, filter="upcolor=red").matches == []


def test_description_map_is_one_for_true_attributes_and_lower_for_noise():
    rng = np.random.default_rng(2)
    truth = np.stack([rng.integers(0, h.num_classes, 300) for h in HEADS], axis=1)
    descriptions = ["gender=female,backpack=yes", "hat=no,age=adult", "hat=yes,bag=yes,gender=male"]
    perfect, rows = description_map(truth, one_hot(truth, 0.8), descriptions)
    assert perfect == pytest.approx(1.0) and all(r["relevant"] > 0 for r in rows)
    noisy, _ = description_map(truth, random_probabilities(300, seed=3), descriptions)
    assert noisy < 0.6


def test_cli_ranks_by_description_without_a_query(tmp_path):
    probs = random_probabilities(40, seed=4)
    index = index_from_embeddings(tmp_path / "index", np.random.default_rng(0).standard_normal((40, 8)),
                                  [f"{i:03d}.jpg" for i in range(40)], probs)
    proc = subprocess.run([sys.executable, "-m", "src.search", f"index={index.folder}", "filter=gender=female,hat=no",
                           "top_k=5", f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = np.argsort(-(probs["gender"][:, 1].astype(np.float64) * probs["hat"][:, 0]), kind="stable")[:5]
    csv = pd.read_csv(tmp_path / "run" / "search_results.csv")
    assert csv["gallery"].tolist() == [f"{i:03d}.jpg" for i in expected]
    assert csv["gallery"].iloc[0] in proc.stdout and "description gender=female,hat=no (woman, no hat)" in proc.stdout
    first = next(line for line in proc.stdout.splitlines() if line.split()[:2] == ["1", csv["gallery"].iloc[0]])
    assert first.endswith(describe_labels([probs[h.name][expected[0]].argmax() for h in HEADS]))  # in words, as the app says it
    # as a photo query does, it draws its grid and the HTML page (the description in words where a photo would be)
    grid, page = tmp_path / "run" / "grids" / "description.png", tmp_path / "run" / "search.html"
    assert Image.open(grid).size[0] > 400 and f"wrote {tmp_path / 'run' / 'search_results.csv'}, {grid}, {page}" in proc.stdout
    assert page.read_text().count("<figure") == 6 and "woman, no hat" in page.read_text()
    proc = subprocess.run([sys.executable, "-m", "src.search", f"index={index.folder}",
                           f"hydra.run.dir={tmp_path / 'run2'}"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "pass query=IMG_OR_DIR" in proc.stderr + proc.stdout
    # the same description in words, said back
    proc = subprocess.run([sys.executable, "-m", "src.search", f"index={index.folder}", "text=a woman, no hat, glittery",
                           "top_k=5", f"hydra.run.dir={tmp_path / 'run3'}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("understood: woman; no hat; not understood: glittery\n")
    assert pd.read_csv(tmp_path / "run3" / "search_results.csv")["gallery"].tolist() == csv["gallery"].tolist()
    proc = subprocess.run([sys.executable, "-m", "src.search", f"index={index.folder}", "text=glittery",
                           f"hydra.run.dir={tmp_path / 'run4'}"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == ("error: nothing understood in 'glittery' (not understood: "
                                                            'glittery); try e.g. "woman, red top, black trousers, backpack"')


def test_a_description_that_contradicts_itself_is_one_line():
    probabilities = {h.name: np.full((3, h.num_classes), 1 / h.num_classes) for h in HEADS}
    with pytest.raises(FilterError, match=r"the description names hat twice with no value in common .*for either "
                                          r"value write hat=a\|b"):
        search_description(probabilities, np.zeros((3, len(HEADS)), np.int64), "hat=yes,hat=no")
