"""Attribute outputs people read (text, JSON, probabilities CSV) say what each class means; the course CSV keeps its coding."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from src.data.attributes import CSV_COLUMNS, HEAD_NAMES, HEADS
from src.deliverables import write_attribute_outputs
from src.io.classification import readable_rows


def one_hot_probabilities(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {h.name: np.eye(h.num_classes, dtype=np.float32)[labels[:, i]] for i, h in enumerate(HEADS)}


def test_readable_outputs_name_the_market_attribute_meanings(tmp_path):
    # image a: male, short hair, long sleeves, long trousers (pants); image b: the opposite of each
    a = [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2]
    b = [1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 8, 9]
    labels = np.array([a, b])
    probabilities = one_hot_probabilities(labels)
    rows = [line.replace("(1.00)", "") for line in readable_rows(["a.jpg", "b.jpg"], labels, probabilities)]
    assert "clothes=pants down=long_lower up=long_sleeve hair=short_hair hat=no gender=male" in rows[0]
    assert "clothes=dress down=short_lower up=short_sleeve hair=long_hair hat=yes gender=female" in rows[1]

    write_attribute_outputs(tmp_path, ["a.jpg", "b.jpg"], probabilities)
    readable = json.loads((tmp_path / "attributes.json").read_text())
    assert readable["a.jpg"]["gender"] == {"male": 1.0, "female": 0.0}
    assert readable["b.jpg"]["up"] == {"long_sleeve": 0.0, "short_sleeve": 1.0}
    columns = pd.read_csv(tmp_path / "attribute_probabilities.csv").columns
    assert {"gender.male", "gender.female", "hair.long_hair", "clothes.dress", "down.short_lower"} <= set(columns)
    course = pd.read_csv(tmp_path / "classification_test.csv")
    assert tuple(course.columns) == CSV_COLUMNS  # the course format is codes, untouched by the readable names
    assert course.loc[0, ["clothes", "down", "up", "hair", "gender"]].tolist() == [2, 1, 1, 1, 1]
    assert course.loc[1, ["clothes", "down", "up", "hair", "gender"]].tolist() == [1, 2, 2, 2, 2]


def test_every_head_says_what_it_describes():
    assert all(h.meaning for h in HEADS) and len({h.meaning for h in HEADS}) == len(HEAD_NAMES)
