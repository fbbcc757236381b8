"""Search by description, with no query image: rank the gallery by how well each image's *predicted* attributes
match a description such as ``"upcolor=red,backpack=yes,gender=female"``.

The score of an image is the product over the described attributes of the probability its heads give to the
described classes (``upcolor=red|white`` adds the two classes' probabilities): the probability that the image
matches the whole description if the heads were independent. A filter (``filter_mask``) keeps the images whose
argmax classes match; a description *ranks* every image, so a near miss (red at 0.45, the argmax orange) still
comes before an image with no red at all. Measured on the validation identities by ``description_map``
(BENCHMARKS.md, ``bench/bench_description_search.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src.data.attributes import HEAD_NAMES, describe_labels
from src.retrieval.filtering import FilterError, describe_filter, filter_mask, parse_filter, readable_filter


def description_scores(probabilities: Mapping[str, np.ndarray], conditions: Mapping[str, Sequence[int]]) -> np.ndarray:
    """(N,) float64: product over the described heads of the probability of the described classes."""
    if not conditions:
        raise FilterError("a description needs at least one attribute=value (e.g. upcolor=red,backpack=yes)")
    for name, classes in conditions.items():  # a filter may pass nothing; a description would rank all at 0
        if not classes:
            raise FilterError(f"the description names {name} twice with no value in common (e.g. {name}=a,{name}=b): "
                              f"no image can match it; for either value write {name}=a|b")
    scores = None
    for name, classes in conditions.items():
        p = np.asarray(probabilities[name], dtype=np.float64)[:, list(classes)].sum(1)
        scores = p if scores is None else scores * p
    return scores


def top_by_score(scores: np.ndarray, top_k: int, passing: np.ndarray | None = None) -> list[tuple[int, float]]:
    """(row, score) of the ``top_k`` best scores (among rows where ``passing``), best first, ties by row."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rows = np.arange(len(scores)) if passing is None else np.flatnonzero(passing)
    if not len(rows):
        return []
    values = scores[rows]
    if len(rows) > top_k:  # partial selection first: O(N) on a large gallery
        keep = np.argpartition(-values, top_k - 1)[:top_k]
        cutoff = values[keep].min()
        keep = np.flatnonzero(values >= cutoff)  # every tie at the cutoff, sorted below
        rows, values = rows[keep], values[keep]
    order = np.lexsort((rows, -values))[:top_k]
    return [(int(rows[i]), float(values[i])) for i in order]


@dataclass
class DescriptionResult:
    description: str  # normalised, e.g. "upcolor=red,gender=female"
    conditions: dict[str, list[int]]
    matches: list[tuple[int, float]]  # (gallery row, score in [0, 1]), best first
    num_passing: int  # images whose argmax attributes match the description


def search_description(probabilities: Mapping[str, np.ndarray], attributes: np.ndarray, description, top_k: int = 20,
                       filter=None) -> DescriptionResult:
    """The ``top_k`` gallery rows best matching ``description`` (``probabilities``: per head (N, classes);
    ``attributes``: (N, 12) argmax classes). ``filter`` additionally keeps only rows whose argmax classes match it."""
    conditions = parse_filter(description)
    scores = description_scores(probabilities, conditions)
    passing = filter_mask(attributes, parse_filter(filter)) if filter else None
    return DescriptionResult(describe_filter(conditions), conditions, top_by_score(scores, top_k, passing),
                             int(filter_mask(attributes, conditions).sum()))


def description_map(true_attributes: np.ndarray, probabilities: Mapping[str, np.ndarray],
                    descriptions: Sequence[str]) -> tuple[float, list[dict]]:
    """mAP of description queries: for each description, the images whose *annotated* attributes match it are the
    relevant ones, and the images are ranked by ``description_scores``. Descriptions matching no image are
    reported with AP None and left out of the mean."""
    from sklearn.metrics import average_precision_score

    predicted = np.stack([np.asarray(probabilities[name]).argmax(1) for name in HEAD_NAMES], axis=1)
    rows = []
    for description in descriptions:
        conditions = parse_filter(description)
        relevant = filter_mask(true_attributes, conditions)
        scores = description_scores(probabilities, conditions)
        ap = float(average_precision_score(relevant, scores)) if relevant.any() else None
        rows.append({"description": describe_filter(conditions), "relevant": int(relevant.sum()), "ap": ap,
                     "filter_precision": _precision(relevant, filter_mask(predicted, conditions))})
    aps = [r["ap"] for r in rows if r["ap"] is not None]
    return (float(np.mean(aps)) if aps else float("nan")), rows


def _precision(relevant: np.ndarray, passing: np.ndarray) -> float | None:
    """Of the images a hard filter on the predicted classes keeps, the fraction that are relevant."""
    return float(relevant[passing].mean()) if passing.any() else None


def describe_index(index, description, top_k: int = 20, filter=None) -> DescriptionResult:
    """``search_description`` over a loaded ``GalleryIndex`` (its stored probabilities and attributes)."""
    return search_description(index.probabilities, index.attributes, description, top_k, filter)


def format_description(result: DescriptionResult, index) -> str:
    """The ranked gallery images of a description search as a readable table."""
    lines = [f"description {result.description} ({readable_filter(result.conditions)}): {len(index)} gallery images "
             f"ranked by the product of their predicted probabilities; {result.num_passing} have all these predicted "
             "attributes", ""]
    if not result.matches:
        return "\n".join([*lines, "  no match"])
    width = max(7, *(len(index.names[r]) for r, _ in result.matches))
    lines.append(f"{'rank':>4}  {'gallery':<{width}}  {'score':>7}  predicted attributes")
    for rank, (row, score) in enumerate(result.matches, start=1):
        lines.append(f"{rank:>4}  {index.names[row]:<{width}}  {score:>7.4f}  "
                     + describe_labels(index.attributes[row]))
    return "\n".join(lines)


def description_frame(result: DescriptionResult, index):
    """rank, gallery, score, camera and the 12 predicted attributes of each match (the CSV of a description search)."""
    rows = [row for row, _ in result.matches]
    frame = index.records.iloc[rows].drop(columns=["id", "sha256"]).rename(columns={"name": "gallery"})
    frame.insert(0, "rank", range(1, len(rows) + 1))
    frame.insert(2, "score", [score for _, score in result.matches])
    frame.insert(0, "description", result.description)
    return frame.reset_index(drop=True)
