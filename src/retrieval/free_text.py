"""Free text -> an attribute description: ``"woman, red top, backpack"`` -> ``gender=female,upcolor=red,backpack=yes``
(for ``search_description``), with what each phrase was understood as and the words that were not. Pure: word lists
and synonyms, no model; a colour needs the garment it is of ("red top", "black trousers"), as the network tells the
upper and the lower body apart."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from src.data.attributes import HEAD_BY_NAME
from src.retrieval.filtering import FilterError

COLOURS = {"black": "black", "white": "white", "red": "red", "purple": "purple", "violet": "purple", "yellow": "yellow",
           "gray": "gray", "grey": "gray", "blue": "blue", "navy": "blue", "green": "green", "pink": "pink",
           "brown": "brown", "beige": "brown", **dict.fromkeys(("multicoloured", "multicolored", "multicolour",
                                                               "multicolor", "colourful", "colorful", "striped"), "multicolor")}
UPPER = {"top", "shirt", "tshirt", "blouse", "jacket", "coat", "sweater", "jumper", "hoodie", "vest", "upper"}
LOWER = {"trousers": ["clothes=pants"], "pants": ["clothes=pants"], "jeans": ["clothes=pants"],
         "skirt": ["clothes=dress"], "dress": ["clothes=dress"], "shorts": ["down=short_lower"], "bottoms": [], "lower": []}
WORDS = {**dict.fromkeys(("woman", "women", "female", "girl", "lady", "she"), "gender=female"),
         **dict.fromkeys(("man", "men", "male", "boy", "guy", "he"), "gender=male"),
         **dict.fromkeys(("child", "kid", "young"), "age=young"), **dict.fromkeys(("teen", "teenager", "teenage"), "age=teenager"),
         "adult": "age=adult", **dict.fromkeys(("old", "elderly", "senior"), "age=old"),
         **dict.fromkeys(("backpack", "rucksack"), "backpack=yes"), "bag": "bag=yes",
         **dict.fromkeys(("handbag", "purse"), "handbag=yes"), **dict.fromkeys(("hat", "cap", "beanie"), "hat=yes")}
LENGTHS = {"hair": "hair={}_hair", "sleeves": "up={}_sleeve", "sleeve": "up={}_sleeve", "sleeved": "up={}_sleeve"}
NEGATIONS = {"no", "not", "without"}
FILLERS = {"a", "an", "the", "and", "with", "in", "on", "of", "who", "is", "wearing", "wears", "wear", "carrying", "carries",
           "has", "having", "dressed", "person", "someone", "clothes", "clothing"}


@dataclass
class TextQuery:
    description: str  # attribute=value,... for search_description; "" when nothing was understood
    understood: list[tuple[str, str]] = field(default_factory=list)  # (the words, their readable meaning)
    unknown: list[str] = field(default_factory=list)  # words not understood, with why when a known word did not fit


def parse_text(text: str) -> TextQuery:
    """``"woman, red top, no hat"`` -> the description ``gender=female,upcolor=red,hat=no`` and what was understood."""
    words = re.findall(r"[a-z]+", text.lower().replace("t-shirt", "tshirt"))
    chosen: dict[str, str] = {}
    query = TextQuery("")
    i = 0
    while i < len(words):
        length, conditions, problem = _phrase(words, i)
        said = " ".join(words[i:i + length])
        pairs = [tuple(c.split("=")) for c in conditions]
        clash = next((name for name, value in pairs if chosen.get(name, value) != value), None)
        if problem or clash:
            query.unknown.append(f"{said} ({problem or 'contradicts ' + _readable(clash, chosen[clash])})")
        elif pairs:
            chosen.update(pairs)
            query.understood.append((said, ", ".join(_readable(*pair) for pair in pairs)))
        elif words[i] not in FILLERS:
            query.unknown.append(said)
        i += length
    query.description = ",".join(f"{name}={value}" for name, value in chosen.items())
    return query


def describe_text(text: str) -> TextQuery:
    """``parse_text``, refusing (FilterError) a text in which nothing was understood, saying which words were not."""
    parsed = parse_text(text)
    if not parsed.description:
        raise FilterError(f"nothing understood in {text!r}" + (f" (not understood: {'; '.join(parsed.unknown)})"
                                                               if parsed.unknown else "")
                          + '; try e.g. "woman, red top, black trousers, backpack"')
    return parsed


def said_back(query: TextQuery) -> str:
    """What was understood and what was not, in one line: ``understood: woman; red top -> red upper-body clothing``."""
    understood = "; ".join(words if words == meaning else f"{words} -> {meaning}" for words, meaning in query.understood)
    return f"understood: {understood}" + (f"; not understood: {'; '.join(query.unknown)}" if query.unknown else "")


def _readable(name: str, value: str) -> str:
    head = HEAD_BY_NAME[name]
    return head.phrases[head.classes.index(value)]


def _phrase(words: list[str], i: int) -> tuple[int, list[str], str | None]:
    """(words used, conditions, why the phrase cannot be used) of the phrase starting at ``words[i]``."""
    word, following = words[i], words[i + 1] if i + 1 < len(words) else ""
    if word in NEGATIONS and WORDS.get(following, "").endswith("=yes"):
        return 2, [WORDS[following].replace("=yes", "=no")], None
    if word in COLOURS:
        part = "upcolor" if following in UPPER else "downcolor" if following in LOWER else None
        if part is None:
            return 1, [], f"a colour of what? e.g. {word} top, {word} trousers"
        colour = COLOURS[word]
        if colour not in HEAD_BY_NAME[part].classes:
            return 2, [], f"{HEAD_BY_NAME[part].meaning} is one of {', '.join(HEAD_BY_NAME[part].values)}"
        return 2, [f"{part}={colour}", *LOWER.get(following, [])], None
    if word in ("long", "short") and following in LENGTHS:
        return 2, [LENGTHS[following].format(word)], None
    if word in ("long", "short") and following in LOWER:
        return 2, [f"down={word}_lower", *(c for c in LOWER[following] if not c.startswith("down="))], None
    if word in WORDS:
        return 1, [WORDS[word]], None
    if word in LOWER:
        return 1, LOWER[word], None
    return 1, [], None
