"""What a search shows: the printed tables, ``search_results.csv``, ``grids/<query>.png`` and ``search.html``
(identity-coloured when identities are known)."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.attributes import HEAD_NAMES, class_names, describe_labels
from src.data.records import DataError, parse_market_name
from src.io.atomic import write_csv
from src.io.visual import THUMB_SIZE, RankRow, Tile, rank_figure, save_png, short_caption, thumbnail, write_html_report
from src.retrieval.filtering import describe_filter, readable_filter
from src.retrieval.search import SearchResult
from src.retrieval.store import MissingGalleryFilesWarning


def read_identities(csv: str | Path) -> dict[str, int]:
    """``name`` -> ``pid`` from a CSV with those columns (e.g. the synthetic data's *_ground_truth.csv)."""
    table = pd.read_csv(csv, dtype={"name": str})
    missing = [c for c in ("name", "pid") if c not in table.columns]
    if missing:
        raise DataError(f"{csv}: ground-truth CSV lacks columns {missing}")
    return dict(zip(table["name"], table["pid"].astype(int)))


def identities(names: Sequence[str], table: Mapping[str, int] | None = None) -> list[int | None]:
    """Identity of each image: from ``table`` when given, else parsed from Market-1501 / course file names."""
    out: list[int | None] = []
    for name in names:
        if table is not None:
            out.append(table.get(name, table.get(Path(name).name)))
            continue
        parsed = parse_market_name(name)
        out.append(None if parsed is None else parsed[0])
    return out


def result_identities(result: SearchResult, query_csv=None, gallery_csv=None):
    """(query pids, {gallery row: pid} of the reported rows), or (None, None) when either side is unknown."""
    query_pids = identities(result.query_names, read_identities(query_csv) if query_csv else None)
    rows = sorted({row for matches in result.matches for row, _ in matches})
    gallery_pids = dict(zip(rows, identities([result.index.names[r] for r in rows],
                                             read_identities(gallery_csv) if gallery_csv else None)))
    if all(p is None for p in query_pids) or (rows and all(p is None for p in gallery_pids.values())):
        return None, None
    return query_pids, gallery_pids


def same_identity(query_pid: int | None, gallery_pid: int | None) -> bool | None:
    if query_pid is None or gallery_pid is None:
        return None
    return query_pid == gallery_pid and query_pid > 0  # Market pid 0 = distractor, -1 = junk: never a match


# ------------------------------------------------------------------------------------------------ outputs
def results_frame(result: SearchResult, query_pids=None, gallery_pids=None) -> pd.DataFrame:
    """One row per (query, rank): query, rank, gallery, distance, [same_identity], then the 12 predicted attributes."""
    rows = []
    for q, matches in enumerate(result.matches):
        for rank, (row, distance) in enumerate(matches, start=1):
            entry = {"query": result.query_names[q], "rank": rank, "gallery": result.index.names[row], "distance": distance}
            if result.p_same is not None:
                entry["p_same"] = result.p_same[q][rank - 1]
            if query_pids is not None and gallery_pids is not None:
                entry["same_identity"] = same_identity(query_pids[q], gallery_pids[row])
            entry.update(class_names(result.index.attributes[row]))
            rows.append(entry)
    known = query_pids is not None and gallery_pids is not None
    columns = (["query", "rank", "gallery", "distance"] + (["p_same"] if result.p_same is not None else [])
               + (["same_identity"] if known else []) + list(HEAD_NAMES))
    return pd.DataFrame(rows, columns=columns)


def settings_text(result: SearchResult) -> str:
    parts = [f"{len(result.index)} gallery images"]
    if result.conditions:
        parts = [f"{len(result.candidates)} of {len(result.index)} gallery images pass the filter "
                 f"{describe_filter(result.conditions)}"]
    parts.append(f"{result.index.kind} index, metric {result.metric}")
    if result.query_expansion:
        parts.append("query expansion")
    if result.rerank:
        parts.append("k-reciprocal re-ranking")
    return ", ".join(parts)


def format_results(result: SearchResult, max_queries: int = 10, query_pids=None, gallery_pids=None) -> str:
    """The ranked matches of the first ``max_queries`` queries as readable tables."""
    lines = [settings_text(result)]
    if result.conditions and not len(result.candidates):
        lines.append(f"no gallery image passes the filter {describe_filter(result.conditions)}: nothing to rank")
    for q, matches in enumerate(result.matches[:max_queries]):
        caption = describe_labels(result.query_attributes[q])
        lines.append(f"\nquery {result.query_names[q]} [{caption}]: top {len(matches)}{own_copies(result, q)}")
        if not matches:
            lines.append("  no match")
            continue
        known = query_pids is not None and gallery_pids is not None
        gallery_width = max(7, *(len(result.index.names[r]) for r, _ in matches))
        probability = result.p_same[q] if result.p_same is not None else None
        lines.append(f"{'rank':>4}  {'gallery':<{gallery_width}}  {'distance':>9}  " + ("p_same  " if probability else "")
                     + ("same id  " if known else "") + "predicted attributes")
        for rank, (row, distance) in enumerate(matches, start=1):
            same = {True: "yes", False: "no", None: "?"}[same_identity(query_pids[q], gallery_pids[row])] if known else ""
            lines.append(f"{rank:>4}  {result.index.names[row]:<{gallery_width}}  {distance:>9.4f}  "
                         + (f"{probability[rank - 1]:>6.3f}  " if probability else "")
                         + (f"{same:<7}  " if known else "")
                         + describe_labels(result.index.attributes[row]))
    if len(result.matches) > max_queries:
        lines.append(f"\n... {len(result.matches) - max_queries} more queries in search_results.csv")
    return "\n".join(lines)


def rank_rows(result: SearchResult, queries: Sequence[int], query_pids=None, gallery_pids=None) -> list[RankRow]:
    rows = []
    for q in queries:
        query = Tile(thumbnail(result.query_paths[q]), "query", f"{_short(result.query_names[q])}\n"
                     + short_caption(result.query_attributes[q]))
        tiles = []
        for rank, (row, distance) in enumerate(result.matches[q], start=1):
            correct = None if query_pids is None or gallery_pids is None else same_identity(query_pids[q], gallery_pids[row])
            score = f"p {result.p_same[q][rank - 1]:.2f}" if result.p_same is not None else f"{distance:.3f}"
            tiles.append(gallery_tile(result.index, row, f"#{rank} {score}", correct))
        rows.append(RankRow(query, tiles))
    return rows


def gallery_tile(index, row: int, title: str, correct: bool | None = None) -> Tile:
    """The thumbnail of gallery row ``row`` with its short name and predicted attributes."""
    return Tile(thumbnail(index.path(index.names[row])), title,
                f"{_short(index.names[row])}\n{short_caption(index.attributes[row])}", correct)


def write_description_outputs(result, index, output_dir: str | Path, *, grids: bool = True, html: bool = True,
                              per_line: int = 10) -> dict[str, Path]:
    """``grids/description.png`` and ``search.html`` of a description search (``describe.DescriptionResult``): the
    description in words where a photo query has its picture, then the ranked gallery images with their scores."""
    words = readable_filter(result.conditions)
    query = Tile(np.full((*THUMB_SIZE[::-1], 3), 255, dtype=np.uint8), "description", textwrap.fill(words, 14))
    row = RankRow(query, [gallery_tile(index, r, f"#{rank} p {score:.2f}") for rank, (r, score) in enumerate(result.matches, 1)])
    title = f"description {result.description} ({words}): top {len(result.matches)} of {len(index)} gallery images"
    written = {}
    if grids:
        written["grid"] = save_png(Path(output_dir) / "grids" / "description.png", rank_figure([row], per_line, title))
    if html:
        meta = {"gallery": index.gallery, "description": f"{result.description} ({words})",
                "score": "the product of the described attributes' predicted probabilities"}
        written["html"] = write_html_report(Path(output_dir) / "search.html", [row], "Gallery search by description", meta,
                                            [title])
    return written


def _short(name: str, width: int = 13) -> str:
    name = Path(name).name
    return name if len(name) <= width else name[: width - 4] + "…" + name[-3:]


def own_copies(result: SearchResult, q: int) -> str:
    """What every output says of a query whose own copies in the gallery were left out (empty when none)."""
    own = result.excluded[q]
    return f" (own copy {', '.join(result.index.names[r] for r in own)} left out)" if own else ""


def warn_missing_gallery_files(result: SearchResult, shown: Sequence[int]) -> None:
    """One warning when matches to be drawn are missing on disk: the rankings (from stored embeddings) stay right,
    their pictures become grey tiles."""
    rows = sorted({row for q in shown for row, _ in result.matches[q]})
    missing = result.index.missing_files(rows)
    if missing:
        warnings.warn(f"{result.index.folder}: {len(missing)} of the {len(rows)} gallery images to draw are not in "
                      f"{result.index.gallery} (moved since indexing?), e.g. {missing[:3]}; they are drawn as grey "
                      f"tiles. Index the folder where they are now: {result.index.reindex_command()}",
                      MissingGalleryFilesWarning, stacklevel=3)


def write_search_outputs(result: SearchResult, output_dir: str | Path, *, grids: bool = True, html: bool = True,
                         max_visual_queries: int = 50, per_line: int = 10, query_pids=None, gallery_pids=None) -> dict[str, Path]:
    """``search_results.csv`` always; ``grids/<query>.png`` and ``search.html`` for the first ``max_visual_queries``."""
    output_dir = Path(output_dir)
    written = {"csv": write_csv(output_dir / "search_results.csv", results_frame(result, query_pids, gallery_pids),
                                float_format="%.6f")}
    shown = list(range(min(len(result.query_names), max_visual_queries)))
    if not shown or not (grids or html):
        return written
    warn_missing_gallery_files(result, shown)
    rows = rank_rows(result, shown, query_pids, gallery_pids)
    settings = settings_text(result)
    if grids:
        used: set[str] = set()
        for q, row in zip(shown, rows):
            stem = Path(result.query_names[q]).with_suffix("").as_posix().replace("/", "_")
            name = stem if stem not in used else f"{stem}_{q}"
            used.add(name)
            title = f"query {result.query_names[q]}: top {len(row.matches)}{own_copies(result, q)}; {settings}"
            written[f"grid:{result.query_names[q]}"] = save_png(output_dir / "grids" / f"{name}.png",
                                                               rank_figure([row], per_line=per_line, title=title))
    if html:
        meta = {"gallery": result.index.gallery, "checkpoint": result.index.checkpoint,
                "input size": f"{result.index.height}x{result.index.width}", "search": settings,
                "queries": f"{len(result.query_names)} (shown: {len(shown)})"}
        if result.unreadable:
            meta["unreadable queries skipped"] = ", ".join(result.unreadable)
        titles = [f"{result.query_names[q]}: top {len(result.matches[q])}{own_copies(result, q)}" for q in shown]
        written["html"] = write_html_report(output_dir / "search.html", rows, "Gallery search", meta, titles)
    return written
