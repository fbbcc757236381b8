"""src/retrieval/filtering.py: attribute filters (parsing, errors that list the valid names), the rows they pass,
and the faiss selector admitting those rows."""

from __future__ import annotations

import numpy as np
import pytest

from src.data.attributes import HEAD_NAMES, HEADS
from src.retrieval.filtering import FilterError, IdSelector, describe_filter, filter_mask, parse_filter


def test_filter_parsing_and_its_errors():
    red, yes = HEADS[HEAD_NAMES.index("upcolor")].classes.index("red"), 1
    expected = {"upcolor": [red], "backpack": [yes]}
    assert parse_filter("upcolor=red,backpack=yes") == expected
    assert parse_filter("UpColor = Red , backpack:yes") == expected
    assert parse_filter({"upcolor": "red", "backpack": True}) == expected
    assert parse_filter(["upcolor=red", "backpack=yes"]) == expected
    assert parse_filter("downcolor=multicolor,age=adult") == {"downcolor": [9], "age": [2]}
    assert parse_filter("upcolor=red|white") == {"upcolor": [1, 2]}
    assert parse_filter(None) == {} and parse_filter("") == {}
    with pytest.raises(FilterError, match="unknown attribute 'colour'.*attributes are: age, backpack, .*upcolor, downcolor"):
        parse_filter("colour=red")
    assert parse_filter("gender=female,hair=long_hair,up=short_sleeve,clothes=dress") == {
        "gender": [1], "hair": [1], "up": [1], "clothes": [0]}
    with pytest.raises(FilterError, match=r"unknown value 'yes' for attribute 'gender' \(gender\); valid values: male, female"):
        parse_filter("gender=yes")
    with pytest.raises(FilterError,
                       match=r"unknown value 'pink' for attribute 'upcolor' \(upper-body colour\); valid values: black, white, red"):
        parse_filter("upcolor=pink")
    with pytest.raises(FilterError, match="unknown value 'maybe'.*valid values: no, yes"):
        parse_filter("backpack=maybe")
    with pytest.raises(FilterError, match="not attribute=value"):
        parse_filter("red")
    attributes = np.zeros((4, len(HEADS)), dtype=np.int64)
    attributes[1, HEAD_NAMES.index("upcolor")] = red
    attributes[2, HEAD_NAMES.index("upcolor")] = red
    attributes[2, HEAD_NAMES.index("backpack")] = 1
    assert filter_mask(attributes, expected).tolist() == [False, False, True, False]
    assert filter_mask(attributes, {}).all()


def test_the_same_attribute_twice_keeps_what_both_allow():
    assert parse_filter("upcolor=red|white|black,upcolor=white|red") == {"upcolor": [1, 2]}
    assert parse_filter("hat=yes,hat=no") == {"hat": []}  # nothing passes both


def test_describe_filter_reads_back_as_the_same_conditions():
    conditions = parse_filter("upcolor=white|red,gender=female,age=old")
    text = describe_filter(conditions)
    assert text == "upcolor=white|red,gender=female,age=old"
    assert parse_filter(text) == conditions


def test_filter_mask_equals_a_row_by_row_check():
    rng = np.random.default_rng(0)
    attributes = np.stack([rng.integers(0, h.num_classes, 200) for h in HEADS], axis=1)
    conditions = parse_filter("upcolor=red|black,gender=female,age=adult|old")
    expected = [all(row[HEAD_NAMES.index(name)] in allowed for name, allowed in conditions.items()) for row in attributes]
    mask = filter_mask(attributes, conditions)
    assert mask.dtype == bool and mask.tolist() == expected and 0 < mask.sum() < 200


def test_the_selector_admits_exactly_the_given_ids():
    ids = np.array([0, 3, 8, 9, 17])
    selector = IdSelector(ids, id_space=20)
    assert [i for i in range(20) if selector.selector.is_member(i)] == ids.tolist()
    assert not any(IdSelector(np.array([], dtype=np.int64), id_space=0).selector.is_member(i) for i in range(8))
