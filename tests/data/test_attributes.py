"""Encoding of the course CSV into 12 heads and back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.attributes import CSV_COLUMNS, HEADS, NUM_HEAD_OUTPUTS, decode_annotations, encode_annotations
from src.data.records import read_annotations_csv
from src.io.classification import write_classification_csv
from tests.conftest import COURSE, needs_shared


def test_heads_have_the_report_sizes():
    sizes = {h.name: h.num_classes for h in HEADS}
    assert sizes["age"] == 4 and sizes["upcolor"] == 9 and sizes["downcolor"] == 10
    assert sum(1 for n in sizes.values() if n == 2) == 9
    assert NUM_HEAD_OUTPUTS == 41


def _row(**values) -> dict:
    row = {c: 1 for c in CSV_COLUMNS}
    row.update(id=7, age=3, **values)
    return row


def test_colour_coding_single_none_and_several():
    table = pd.DataFrame([_row(upred=2, downblue=2), _row(), _row(upred=2, upblue=2, downblack=2, downgray=2)])
    labels = encode_annotations(table)
    assert labels.loc[0, "upcolor"] == 2 and labels.loc[0, "downcolor"] == 6
    assert labels.loc[1, "upcolor"] == 8 and labels.loc[1, "downcolor"] == 9  # none set: multicolour
    assert labels.loc[2, "upcolor"] == 8 and labels.loc[2, "downcolor"] == 9  # several set: multicolour
    assert labels.loc[0, "age"] == 2


def test_decode_multicolour_writes_all_colour_columns_as_no():
    decoded = decode_annotations(["a.jpg"], np.array([[0] * 10 + [8, 9]]))
    from src.data.attributes import LOWER_COLOURS, UPPER_COLOURS

    assert (decoded[list(UPPER_COLOURS + LOWER_COLOURS)] == 1).all().all()


def test_round_trip_random_labels():
    rng = np.random.default_rng(0)
    labels = np.stack([rng.integers(0, h.num_classes, 50) for h in HEADS], axis=1)
    table = decode_annotations([str(i) for i in range(50)], labels)
    np.testing.assert_array_equal(encode_annotations(table).to_numpy(), labels)


@needs_shared
def test_shared_csv_round_trip_is_byte_identical(tmp_path):
    source = COURSE / "annotations_train.csv"
    table = read_annotations_csv(source)
    labels = encode_annotations(table).to_numpy()
    out = write_classification_csv(tmp_path / "round_trip.csv", table["id"].tolist(), labels)
    assert out.read_bytes() == source.read_bytes()
    assert len(table) == 600


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        decode_annotations(["a"], np.zeros((1, 11), dtype=int))


def test_labels_are_described_in_the_apps_words():
    from src.data.attributes import HEAD_NAMES, describe_labels

    def labels(**classes):
        return [HEADS[i].classes.index(classes.get(name, HEADS[i].classes[0])) for i, name in enumerate(HEAD_NAMES)]

    assert describe_labels(labels(gender="female", age="adult", upcolor="red", downcolor="multicolor", backpack="yes",
                                  hat="yes")) == "woman, adult; top red, lower several colours; backpack, hat"
    assert describe_labels(labels(age="young", upcolor="black", downcolor="blue")) == "man, child; top black, lower blue"
