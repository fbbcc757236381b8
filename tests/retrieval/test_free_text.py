"""src/retrieval/free_text.py: free text -> an attribute description, what was understood, the words that were not."""

from __future__ import annotations

import pytest

from src.data.attributes import HEADS
from src.retrieval.filtering import FilterError, parse_filter
from src.retrieval.free_text import COLOURS, LOWER, UPPER, WORDS, describe_text, parse_text, said_back


@pytest.mark.parametrize(("text", "description", "understood"), [
    ("woman, red top, backpack", "gender=female,upcolor=red,backpack=yes",
     [("woman", "woman"), ("red top", "red upper-body clothing"), ("backpack", "backpack")]),
    ("A man in black jeans with no hat and long hair", "gender=male,downcolor=black,clothes=pants,hat=no,hair=long_hair",
     [("man", "man"), ("black jeans", "black lower-body clothing, trousers or shorts"), ("no hat", "no hat"),
      ("long hair", "long hair")]),
    ("elderly lady, grey T-shirt, short skirt, short-sleeved",
     "age=old,gender=female,upcolor=gray,down=short_lower,clothes=dress,up=short_sleeve",
     [("elderly", "old person"), ("lady", "woman"), ("grey tshirt", "gray upper-body clothing"),
      ("short skirt", "short lower-body clothing, dress or skirt"), ("short sleeved", "short sleeves")]),
    ("teen carrying a rucksack, striped shirt, without handbag", "age=teenager,backpack=yes,upcolor=multicolor,handbag=no",
     [("teen", "teenager"), ("rucksack", "backpack"), ("striped shirt", "multicoloured upper-body clothing"),
      ("without handbag", "no handbag")]),
])
def test_phrases_and_synonyms_become_the_description(text, description, understood):
    query = parse_text(text)
    assert query.description == description and query.understood == understood and query.unknown == []
    parse_filter(query.description)  # a valid description


def test_unknown_words_and_misfits_are_reported_not_guessed():
    query = parse_text("sparkly woman, red, pink shirt, man")
    assert query.description == "gender=female"
    assert query.unknown == ["sparkly", "red (a colour of what? e.g. red top, red trousers)",
                             "pink shirt (upper-body colour is one of black, white, red, purple, yellow, gray, blue, "
                             "green, several colours)", "man (contradicts woman)"]
    assert parse_text("") == parse_text(" , the and ") == parse_text("a person wearing clothes")
    assert parse_text("").description == "" and not parse_text("").unknown


def test_every_synonym_names_a_class_of_its_attribute():
    for word in [*WORDS, *LOWER]:
        parse_filter(parse_text(word).description)
    for colour in COLOURS:
        for garment in [*UPPER, *LOWER]:
            query = parse_text(f"{colour} {garment}")
            assert query.understood or "is one of" in query.unknown[0], (colour, garment)
            parse_filter(query.description)


def test_every_class_has_a_readable_value_and_phrase():
    for head in HEADS:
        assert len(head.values) == len(head.phrases) == head.num_classes and all(head.values) and all(head.phrases)
        assert not any("_" in text for text in (*head.values, *head.phrases)), head.name  # no code names
        assert head.readable()["label"] == head.meaning


def test_what_was_understood_is_said_back_and_nothing_understood_is_refused():
    assert said_back(parse_text("woman, red top, sparkly")) == ("understood: woman; red top -> red upper-body clothing; "
                                                                "not understood: sparkly")
    with pytest.raises(FilterError, match=r"^nothing understood in 'sparkly red' \(not understood: sparkly; red \(a colour"):
        describe_text("sparkly red")
    assert describe_text("woman").description == "gender=female"
