"""The 12 attribute heads and the course CSV coding (1 = no / 2 = yes, one-hot colours).

Colour heads: the course CSV has one column per colour. Exactly one set -> that colour; none set ->
"multicolour" (the extra last class). Several set (never in the course data, a few rows of Lin et
al.'s .mat) -> also "multicolour": the person wears more than one colour, and decoding multicolour
writes all colour columns as 1, which the course data uses for the same case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

UPPER_COLOURS = ("upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen")
LOWER_COLOURS = (
    "downblack", "downwhite", "downpink", "downpurple", "downyellow", "downgray", "downblue", "downgreen", "downbrown",
)
BINARY_COLUMNS = ("backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender")
CSV_COLUMNS = ("id", "age", *BINARY_COLUMNS, *UPPER_COLOURS, *LOWER_COLOURS)


@dataclass(frozen=True)
class Head:
    """One attribute: its CSV name, what it describes, and its classes in label order (class i is CSV value i + 1
    for binary columns); for people, each class's ``values`` (under ``meaning``, e.g. in a drop-down) and ``phrases``
    (standing alone, e.g. in a description): the one readable wording the app and the description CLI use."""

    name: str
    classes: tuple[str, ...]
    meaning: str = ""
    values: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def readable(self) -> dict:
        return {"label": self.meaning, "values": dict(zip(self.classes, self.values)),
                "phrases": dict(zip(self.classes, self.phrases))}


def _colours(classes: tuple[str, ...], part: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple("several colours" if c == "multicolor" else c for c in classes),
            tuple(f"{'multicoloured' if c == 'multicolor' else c} {part}" for c in classes))


NO_YES = ("no", "yes")
# The Market-1501 attribute definitions (Lin et al.): CSV value 1 is the first class, 2 the second.
BINARY_HEADS = (
    Head("backpack", NO_YES, "carrying a backpack", NO_YES, ("no backpack", "backpack")),
    Head("bag", NO_YES, "carrying a bag", NO_YES, ("no bag", "bag")),
    Head("handbag", NO_YES, "carrying a handbag", NO_YES, ("no handbag", "handbag")),
    Head("clothes", ("dress", "pants"), "type of lower-body clothing", ("dress or skirt", "trousers or shorts"),
         ("dress or skirt", "trousers or shorts")),
    Head("down", ("long_lower", "short_lower"), "length of lower-body clothing", ("long", "short"),
         ("long lower-body clothing", "short lower-body clothing")),
    Head("up", ("long_sleeve", "short_sleeve"), "sleeve length", ("long", "short"), ("long sleeves", "short sleeves")),
    Head("hair", ("short_hair", "long_hair"), "hair length", ("short", "long"), ("short hair", "long hair")),
    Head("hat", NO_YES, "wearing a hat", NO_YES, ("no hat", "hat")),
    Head("gender", ("male", "female"), "gender", ("man", "woman"), ("man", "woman")),
)
assert tuple(h.name for h in BINARY_HEADS) == BINARY_COLUMNS
_UP, _DOWN = tuple(c[2:] for c in UPPER_COLOURS) + ("multicolor",), tuple(c[4:] for c in LOWER_COLOURS) + ("multicolor",)
HEADS: tuple[Head, ...] = (
    Head("age", ("young", "teenager", "adult", "old"), "age group", ("child", "teenager", "adult", "old"),
         ("child", "teenager", "adult", "old person")),
    *BINARY_HEADS,
    Head("upcolor", _UP, "upper-body colour", *_colours(_UP, "upper-body clothing")),
    Head("downcolor", _DOWN, "lower-body colour", *_colours(_DOWN, "lower-body clothing")),
)
HEAD_NAMES: tuple[str, ...] = tuple(h.name for h in HEADS)
HEAD_BY_NAME: dict[str, Head] = {h.name: h for h in HEADS}
NUM_HEAD_OUTPUTS = sum(h.num_classes for h in HEADS)  # 41
CARRIED = ("backpack", "bag", "handbag", "hat")


def class_names(labels) -> dict[str, str]:
    """Head name -> class name, from one class index per head."""
    return {head.name: head.classes[int(labels[i])] for i, head in enumerate(HEADS)}


def describe_labels(labels) -> str:
    """One class index per head in the app's words: ``woman, adult; top red, lower several colours; backpack, hat``."""
    value = class_names(labels)
    words, phrase = ({h.name: h.readable()[kind][value[h.name]] for h in HEADS} for kind in ("values", "phrases"))
    carried = ", ".join(phrase[name] for name in CARRIED if value[name] == "yes")
    return "; ".join(filter(None, [f"{phrase['gender']}, {words['age']}",
                                   f"top {words['upcolor']}, lower {words['downcolor']}", carried]))


def _colour_class(onehot: np.ndarray) -> np.ndarray:
    """(N, C) booleans -> class index; none or several set -> C (multicolour)."""
    n_set = onehot.sum(axis=1)
    return np.where(n_set == 1, onehot.argmax(axis=1), onehot.shape[1])


def encode_annotations(table: pd.DataFrame) -> pd.DataFrame:
    """Course-coded table (columns of CSV_COLUMNS, values 1/2, age 1..4) -> class indices per head.

    Returns a DataFrame indexed like ``table`` with one int column per head, in HEAD_NAMES order.
    The table must already be validated (see records.read_annotations_csv).
    """
    out = pd.DataFrame(index=table.index)
    out["age"] = table["age"].to_numpy(dtype=np.int64) - 1
    for name in BINARY_COLUMNS:
        out[name] = table[name].to_numpy(dtype=np.int64) - 1
    out["upcolor"] = _colour_class(table[list(UPPER_COLOURS)].to_numpy() == 2)
    out["downcolor"] = _colour_class(table[list(LOWER_COLOURS)].to_numpy() == 2)
    return out[list(HEAD_NAMES)].astype(np.int64)


def decode_annotations(ids: list[str] | pd.Index, labels: np.ndarray) -> pd.DataFrame:
    """(N, 12) class indices (HEAD_NAMES order) -> table in the course CSV format (CSV_COLUMNS)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 2 or labels.shape[1] != len(HEADS):
        raise ValueError(f"expected labels of shape (N, {len(HEADS)}), got {labels.shape}")
    col = {name: labels[:, i] for i, name in enumerate(HEAD_NAMES)}
    # object dtype: file names may hold undecodable bytes (surrogates), which pyarrow-backed strings refuse
    data: dict[str, np.ndarray | pd.Series] = {"id": pd.Series(list(ids), dtype=object), "age": col["age"] + 1}
    for name in BINARY_COLUMNS:
        data[name] = col[name] + 1
    for head, columns in (("upcolor", UPPER_COLOURS), ("downcolor", LOWER_COLOURS)):
        cls = col[head]
        for j, c in enumerate(columns):
            data[c] = np.where(cls == j, 2, 1)
    return pd.DataFrame(data, columns=list(CSV_COLUMNS))
