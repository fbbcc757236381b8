"""What a search asks, checked against the index before any network loads or any image is decoded: the kind and
input size the searcher expects, the filter's attribute names and values, and the neighbour counts of the
post-processing against the number of gallery images. Needs only the index's manifest and records (no torch, no faiss)."""

from __future__ import annotations

from collections.abc import Mapping

from src.errors import ConfigError
from src.retrieval.filtering import parse_filter
from src.retrieval.store import GalleryIndex, GalleryIndexError


def check_request(index: GalleryIndex, kind: str | None, height: int | None, width: int | None) -> None:
    """The searcher's expectations (kind, input size), when given, must be the index's."""
    if kind is not None and kind != index.kind:
        raise GalleryIndexError(f"{index.folder} is a {index.kind} index, the search asks for kind={kind}; pass "
                                f"kind={index.kind} (or none), or build a {kind} index (python -m src.index build "
                                f"... index.kind={kind} reindex=true)")
    if (height, width) != (None, None) and (height, width) != (index.height, index.width):
        raise GalleryIndexError(f"{index.folder} was built at input size {index.height}x{index.width}, the search "
                                f"asks for {height}x{width}; queries are embedded at the index's size")


def neighbour_counts(postprocess: Mapping | None) -> dict[str, object]:
    """``postprocess.<key>`` -> value of the neighbour counts that are switched on."""
    postprocess = postprocess or {}
    counts: dict[str, object] = {}
    rerank, expansion = postprocess.get("rerank") or {}, postprocess.get("query_expansion") or {}
    if rerank.get("enabled"):
        counts.update({"rerank.k1": rerank.get("k1"), "rerank.k2": rerank.get("k2")})
    if expansion.get("enabled"):
        counts["query_expansion.top_k"] = expansion.get("top_k")
    return counts


def check_search(index: GalleryIndex, *, filter=None, postprocess: Mapping | None = None, kind: str | None = None,
                 height: int | None = None, width: int | None = None) -> dict[str, list[int]]:
    """Everything a search can check before its work; returns the parsed filter ({head: allowed classes}).

    A ``top_k`` above the number of gallery images is allowed (every image is returned); re-ranking's ``k1``/``k2``
    and query expansion's ``top_k`` count neighbours among the gallery images, so they must be at least 1 and at
    most that number."""
    check_request(index, kind, height, width)
    conditions = parse_filter(filter)
    for key, value in neighbour_counts(postprocess).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"postprocess.{key}={value!r}: expected a whole number >= 1")
        if value > len(index):
            raise ConfigError(f"postprocess.{key}={value}: more neighbours than the {len(index)} gallery images of "
                              f"{index.folder}; use at most {len(index)}")
    return conditions
