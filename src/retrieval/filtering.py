"""Attribute filters on the gallery's *predicted* attributes: ``"upcolor=red,backpack=yes"`` -> rows that pass,
and the faiss ID selector that lets only those rows into a search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.data.attributes import HEAD_BY_NAME, HEAD_NAMES
from src.errors import KnownError

ALTERNATIVE = "|"


class FilterError(KnownError, ValueError):
    """An attribute filter naming an unknown attribute or class; the message lists the valid ones."""


def _pairs(spec) -> list[tuple[str, str]]:
    if spec is None or spec == "" or (isinstance(spec, (Mapping, DictConfig)) and not spec):
        return []
    if isinstance(spec, (DictConfig, ListConfig)):
        spec = OmegaConf.to_container(spec)
    if isinstance(spec, Mapping):
        return [(str(k), "yes" if v is True else "no" if v is False else str(v)) for k, v in spec.items()]
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    pairs = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        key, sep, value = item.partition("=") if "=" in item else item.partition(":")
        if not sep:
            raise FilterError(f"filter item {item!r} is not attribute=value (e.g. upcolor=red,backpack=yes)")
        pairs.append((key, value))
    return pairs


def parse_filter(spec) -> dict[str, list[int]]:
    """``"upcolor=red,backpack=yes"`` (or a dict, or a list of ``attr=value``) -> {head: allowed class indices}.

    Values are the readable class names (``gender=female``, ``up=short_sleeve``, ``clothes=dress``, ``hat=yes``; see
    ``HEADS``), case-insensitive; ``upcolor=red|white`` allows either. Unknown attributes or values raise
    FilterError listing the valid ones.
    """
    conditions: dict[str, list[int]] = {}
    for key, value in _pairs(spec):
        name = key.strip().lower()
        if name not in HEAD_BY_NAME:
            raise FilterError(f"unknown attribute {key.strip()!r} in the filter; attributes are: {', '.join(HEAD_NAMES)}")
        classes = HEAD_BY_NAME[name].classes
        allowed = []
        for option in value.split(ALTERNATIVE):
            option = option.strip().lower()
            if option not in classes:
                raise FilterError(f"unknown value {option!r} for attribute {name!r} ({HEAD_BY_NAME[name].meaning}); "
                                  f"valid values: {', '.join(classes)}")
            allowed.append(classes.index(option))
        if name in conditions:  # the same attribute twice: both must hold
            allowed = [c for c in conditions[name] if c in allowed]
        conditions[name] = sorted(set(allowed))
    return conditions


def describe_filter(conditions: Mapping[str, Sequence[int]]) -> str:
    return ",".join(f"{name}=" + ALTERNATIVE.join(HEAD_BY_NAME[name].classes[c] for c in classes)
                    for name, classes in conditions.items())


def readable_filter(conditions: Mapping[str, Sequence[int]]) -> str:
    """The conditions in words: ``upcolor=red,gender=female`` -> ``red upper-body clothing, woman`` (``a|b``: ``A or B``)."""
    return ", ".join(" or ".join(HEAD_BY_NAME[name].phrases[c] for c in classes) for name, classes in conditions.items())


def filter_mask(attributes, conditions: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Rows of ``attributes`` (N, 12 class indices, HEAD_NAMES order) that satisfy every condition (bool array)."""
    attributes = np.asarray(attributes)
    mask = np.ones(len(attributes), dtype=bool)
    for name, classes in conditions.items():
        mask &= np.isin(attributes[:, HEAD_NAMES.index(name)], np.asarray(list(classes), dtype=attributes.dtype))
    return mask


class IdSelector:
    """A faiss ``IDSelectorBitmap`` admitting ``ids``; holds the bitmap faiss reads for as long as it is alive."""

    def __init__(self, ids: np.ndarray, id_space: int):
        import faiss

        bits = np.zeros(max(int(id_space), 1), dtype=bool)
        bits[np.asarray(ids, dtype=np.int64)] = True
        self.bitmap = np.packbits(bits, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(self.bitmap), faiss.swig_ptr(self.bitmap))  # size in bytes
