"""Search a gallery index: ``python -m src.search index=FILE query=IMG_OR_DIR top_k=20 [filter="upcolor=red,backpack=yes"]
[rerank=true] [query_expansion=true]``.

Prints the ranked matches with their distances, and writes into the run folder ``search_results.csv`` (query, rank,
gallery image, distance, the gallery image's predicted attributes), ``search.html`` (a self-contained report) and
``grids/<query>.png`` (query + top-k). ``filter`` keeps only gallery images whose *predicted* attributes match
(names and classes of ``src.data.attributes.HEADS``; ``|`` between values accepts any of them). A gallery file
byte-identical to the query (same SHA-256: its own copy) is never reported. Re-ranking and query expansion work
on the filtered gallery. Queries that are themselves in the index (same SHA-256) reuse the stored embedding.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.data.attributes import HEAD_BY_NAME, HEAD_NAMES, HEADS
from src.data.feature_cache import file_digest
from src.data.records import IMAGE_SUFFIXES, DataError, parse_course_name, parse_standard_name
from src.index import (
    GalleryIndex,
    GalleryIndexError,
    UnreadableImagesWarning,
    embed_images,
    gallery_files,
    load_index,
    load_reid_net,
)
from src.io.atomic import write_csv
from src.io.visual import RankRow, Tile, rank_figure, save_png, short_caption, thumbnail, write_html_report
from src.metrics.distance import iter_distance_chunks
from src.metrics.query_expansion import query_expansion as expand_queries
from src.metrics.rerank import re_ranking_from_features
from src.runtime import apply_threads

ALTERNATIVE = "|"


class FilterError(ValueError):
    """An attribute filter naming an unknown attribute or class; the message lists the valid ones."""


# ------------------------------------------------------------------------------------------------ filter
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


def filter_mask(attributes: torch.Tensor, conditions: Mapping[str, Sequence[int]]) -> torch.Tensor:
    """Rows of ``attributes`` (N, 12 class indices) that satisfy every condition."""
    mask = torch.ones(len(attributes), dtype=torch.bool)
    for name, classes in conditions.items():
        column = attributes[:, HEAD_NAMES.index(name)]
        mask &= torch.isin(column, torch.as_tensor(list(classes), dtype=column.dtype))
    return mask


# ------------------------------------------------------------------------------------------------ search
@dataclass
class SearchResult:
    index: GalleryIndex
    query_names: list[str]
    query_paths: list[Path]
    query_sha256: list[str]
    query_attributes: torch.Tensor  # (Q, 12) predicted classes
    candidates: torch.Tensor  # gallery rows of the index that passed the filter
    matches: list[list[tuple[int, float]]]  # per query: (gallery row of the index, distance), nearest first
    excluded: list[list[int]]  # per query: gallery rows left out as its own copy
    conditions: dict[str, list[int]] = field(default_factory=dict)
    rerank: bool = False
    query_expansion: bool = False
    unreadable: list[str] = field(default_factory=list)


def query_files(query: str | Path) -> tuple[Path, list[str]]:
    """(folder, relative names) of the query images: one image file, or every image under a folder."""
    query = Path(query)
    if query.is_file():
        if query.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{query}: not an image ({', '.join(IMAGE_SUFFIXES)})")
        return query.parent, [query.name]
    if not query.exists():
        raise DataError(f"{query}: query image or folder not found")
    return query, gallery_files(query)


def _query_network(index: GalleryIndex, ckpt_path: str | Path | None):
    path = Path(ckpt_path or index.checkpoint)
    if not path.is_file():
        raise GalleryIndexError(f"checkpoint {path} (the one the index was built with) not found; pass ckpt_path=PATH "
                                "to the same checkpoint file")
    sha = file_digest(path)
    if sha != index.checkpoint_sha256:
        raise GalleryIndexError(f"the index was built with checkpoint {index.checkpoint} (sha256 "
                                f"{index.checkpoint_sha256[:12]}), not with {path} (sha256 {sha[:12]}); queries "
                                "must be embedded by the same network")
    return load_reid_net(path)[0]


def embed_queries(index: GalleryIndex, folder: Path, names: list[str], *, ckpt_path=None, batch_size: int = 64,
                  num_workers: int = 0):
    """(kept names, hashes, embeddings, attributes, unreadable names); queries already in the index reuse its rows."""
    hashes = [file_digest(folder / n) for n in names]
    row_of_hash = {h: i for i, h in enumerate(index.sha256)}
    dim = index.embeddings.shape[1]
    embeddings = torch.empty(len(names), dim)
    attributes = torch.empty(len(names), len(HEADS), dtype=torch.int64)
    known = [i for i, h in enumerate(hashes) if h in row_of_hash]
    rows = torch.tensor([row_of_hash[hashes[i]] for i in known], dtype=torch.long)
    embeddings[known], attributes[known] = index.embeddings[rows], index.attributes[rows]
    todo = [i for i, h in enumerate(hashes) if h not in row_of_hash]
    bad: dict[int, str] = {}
    if todo:
        net = _query_network(index, ckpt_path)
        fresh = embed_images(net, [folder / names[i] for i in todo], index.height, index.width,
                             batch_size=batch_size, num_workers=num_workers, desc="embedding queries")
        ok = [todo[i] for i in fresh.ok]
        if ok:
            embeddings[ok], attributes[ok] = fresh.embeddings, fresh.attributes
        bad = {todo[i]: error for i, error in fresh.errors.items()}
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable query images: " + "; ".join(list(bad.values())[:20]),
                      UnreadableImagesWarning, stacklevel=2)
    keep = [i for i in range(len(names)) if i not in bad]
    return ([names[i] for i in keep], [hashes[i] for i in keep], embeddings[keep], attributes[keep],
            [names[i] for i in sorted(bad)])


def search(index: GalleryIndex | str | Path, query: str | Path, *, top_k: int = 20, filter=None,
           rerank: bool = False, query_expansion: bool = False, rerank_params: Mapping | None = None,
           query_expansion_params: Mapping | None = None, metric: str | None = None, ckpt_path=None,
           batch_size: int = 64, num_workers: int = 0, chunk_size: int = 256) -> SearchResult:
    """Rank the (filtered) gallery of ``index`` for every query image; see the module docstring."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    index = index if isinstance(index, GalleryIndex) else load_index(index)
    conditions = parse_filter(filter)
    folder, names = query_files(query)
    names, hashes, q, q_attributes, unreadable = embed_queries(index, folder, names, ckpt_path=ckpt_path,
                                                               batch_size=batch_size, num_workers=num_workers)
    if not names:
        raise DataError(f"{query}: none of the query images could be read")
    candidates = torch.nonzero(filter_mask(index.attributes, conditions)).flatten()
    result = SearchResult(index, names, [folder / n for n in names], hashes, q_attributes, candidates,
                          [[] for _ in names], [[] for _ in names], conditions, rerank, query_expansion, unreadable)
    if len(candidates) == 0:
        return result
    g = index.embeddings[candidates]
    metric = metric or index.metric
    if query_expansion:
        params = {"top_k": 5, "alpha": 3.0, "expand_gallery": False, **(query_expansion_params or {})}
        params["expand_gallery"] = bool(params["expand_gallery"]) and len(g) > 1
        params["top_k"] = max(1, min(int(params["top_k"]), len(g) - params["expand_gallery"]))
        q, g = expand_queries(q, g, top_k=params["top_k"], alpha=params["alpha"], expand_gallery=params["expand_gallery"])
    if rerank:
        params = {"k1": 20, "k2": 6, "lambda_value": 0.3, **(rerank_params or {})}
        blocks = [(0, re_ranking_from_features(q, g, metric, k1=params["k1"], k2=params["k2"],
                                                lambda_value=params["lambda_value"]))]
    else:
        blocks = iter_distance_chunks(q, g, metric, chunk_size, names, [index.names[i] for i in candidates.tolist()])

    candidate_of_hash: dict[str, list[int]] = {}
    for position, row in enumerate(candidates.tolist()):
        candidate_of_hash.setdefault(index.sha256[row], []).append(position)
    for start, block in blocks:
        block = torch.as_tensor(block).clone()
        for offset in range(len(block)):
            copies = candidate_of_hash.get(hashes[start + offset], [])
            if copies:
                block[offset, copies] = float("inf")
                result.excluded[start + offset] = [int(candidates[c]) for c in copies]
        values, order = torch.sort(block, dim=1, stable=True)
        values, order = values[:, :top_k], order[:, :top_k]
        for offset in range(len(block)):
            finite = torch.isfinite(values[offset])
            result.matches[start + offset] = [(int(candidates[c]), float(d)) for c, d in
                                              zip(order[offset][finite].tolist(), values[offset][finite].tolist())]
    return result


# ------------------------------------------------------------------------------------------------ identities
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
        pid = None
        for parse in (parse_standard_name, parse_course_name):
            try:
                pid = parse(Path(name).name)[0]
                break
            except DataError:
                pass
        out.append(pid)
    return out


def same_identity(query_pid: int | None, gallery_pid: int | None) -> bool | None:
    if query_pid is None or gallery_pid is None:
        return None
    return query_pid == gallery_pid and query_pid > 0  # Market pid 0 = distractor, -1 = junk: never a match


# ------------------------------------------------------------------------------------------------ outputs
def _class_names(labels) -> dict[str, str]:
    return {head.name: head.classes[int(labels[i])] for i, head in enumerate(HEADS)}


def results_frame(result: SearchResult, query_pids=None, gallery_pids=None) -> pd.DataFrame:
    """One row per (query, rank): query, rank, gallery, distance, [same_identity], then the 12 predicted attributes."""
    rows = []
    for q, matches in enumerate(result.matches):
        for rank, (row, distance) in enumerate(matches, start=1):
            entry = {"query": result.query_names[q], "rank": rank, "gallery": result.index.names[row], "distance": distance}
            if query_pids is not None and gallery_pids is not None:
                entry["same_identity"] = same_identity(query_pids[q], gallery_pids[row])
            entry.update(_class_names(result.index.attributes[row]))
            rows.append(entry)
    columns = ["query", "rank", "gallery", "distance"] + (["same_identity"] if query_pids is not None and gallery_pids is not None else []) + list(HEAD_NAMES)
    return pd.DataFrame(rows, columns=columns)


def settings_text(result: SearchResult) -> str:
    parts = [f"{len(result.index)} gallery images"]
    if result.conditions:
        parts = [f"{len(result.candidates)} of {len(result.index)} gallery images pass the filter "
                 f"{describe_filter(result.conditions)}"]
    parts.append(f"metric {result.index.metric}")
    if result.query_expansion:
        parts.append("query expansion")
    if result.rerank:
        parts.append("k-reciprocal re-ranking")
    return ", ".join(parts)


def format_results(result: SearchResult, max_queries: int = 10, query_pids=None, gallery_pids=None) -> str:
    """The ranked matches of the first ``max_queries`` queries as readable tables."""
    lines = [settings_text(result)]
    for q, matches in enumerate(result.matches[:max_queries]):
        caption = short_caption(result.query_attributes[q]).replace("\n", ", ")
        head = f"\nquery {result.query_names[q]} [{caption}]: top {len(matches)}"
        if result.excluded[q]:
            head += f" (own copy {', '.join(result.index.names[r] for r in result.excluded[q])} left out)"
        lines.append(head)
        if not matches:
            lines.append("  no match")
            continue
        known = query_pids is not None and gallery_pids is not None
        gallery_width = max(7, *(len(result.index.names[r]) for r, _ in matches))
        lines.append(f"{'rank':>4}  {'gallery':<{gallery_width}}  {'distance':>9}  " + ("same id  " if known else "")
                     + "predicted attributes")
        for rank, (row, distance) in enumerate(matches, start=1):
            same = {True: "yes", False: "no", None: "?"}[same_identity(query_pids[q], gallery_pids[row])] if known else ""
            lines.append(f"{rank:>4}  {result.index.names[row]:<{gallery_width}}  {distance:>9.4f}  "
                         + (f"{same:<7}  " if known else "")
                         + short_caption(result.index.attributes[row]).replace("\n", ", "))
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
            tiles.append(Tile(thumbnail(result.index.path(result.index.names[row])), f"#{rank} {distance:.3f}",
                              f"{_short(result.index.names[row])}\n{short_caption(result.index.attributes[row])}", correct))
        rows.append(RankRow(query, tiles))
    return rows


def _short(name: str, width: int = 13) -> str:
    name = Path(name).name
    return name if len(name) <= width else name[: width - 4] + "…" + name[-3:]


def write_search_outputs(result: SearchResult, output_dir: str | Path, *, grids: bool = True, html: bool = True,
                         max_visual_queries: int = 50, per_line: int = 10, query_pids=None, gallery_pids=None) -> dict[str, Path]:
    """``search_results.csv`` always; ``grids/<query>.png`` and ``search.html`` for the first ``max_visual_queries``."""
    output_dir = Path(output_dir)
    written = {"csv": write_csv(output_dir / "search_results.csv", results_frame(result, query_pids, gallery_pids),
                                float_format="%.6f")}
    shown = list(range(min(len(result.query_names), max_visual_queries)))
    if not shown or not (grids or html):
        return written
    rows = rank_rows(result, shown, query_pids, gallery_pids)
    settings = settings_text(result)
    if grids:
        used: set[str] = set()
        for q, row in zip(shown, rows):
            stem = Path(result.query_names[q]).with_suffix("").as_posix().replace("/", "_")
            name = stem if stem not in used else f"{stem}_{q}"
            used.add(name)
            title = f"query {result.query_names[q]}: top {len(row.matches)}"
            if result.excluded[q]:
                title += f" (own copy {', '.join(result.index.names[r] for r in result.excluded[q])} left out)"
            title += f"; {settings}"
            written[f"grid:{result.query_names[q]}"] = save_png(output_dir / "grids" / f"{name}.png",
                                                               rank_figure([row], per_line=per_line, title=title))
    if html:
        meta = {"gallery": result.index.gallery, "checkpoint": result.index.checkpoint,
                "input size": f"{result.index.height}x{result.index.width}", "search": settings,
                "queries": f"{len(result.query_names)} (shown: {len(shown)})"}
        if result.unreadable:
            meta["unreadable queries skipped"] = ", ".join(result.unreadable)
        titles = []
        for q in shown:
            title = f"{result.query_names[q]}: top {len(result.matches[q])}"
            if result.excluded[q]:
                title += f" (own copy {', '.join(result.index.names[r] for r in result.excluded[q])} left out)"
            titles.append(title)
        written["html"] = write_html_report(output_dir / "search.html", rows, "Gallery search", meta, titles)
    return written


# ------------------------------------------------------------------------------------------------ CLI
def hydra_argv(argv: list[str]) -> list[str]:
    """Quote an unquoted ``filter=a=b,c=d`` for Hydra (whose grammar reads ``=`` and ``,`` as syntax)."""
    out = []
    for arg in argv:
        if arg.startswith("filter=") and arg[7:] and arg[7] not in "'\"{[" and ("=" in arg[7:] or "," in arg[7:]):
            value = arg[7:].replace("\\", "\\\\").replace("'", "\\'")
            arg = f"filter='{value}'"
        out.append(arg)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="search")
def main(cfg: DictConfig) -> None:
    apply_threads(cfg.get("torch_threads"))
    result = search(
        cfg.index, cfg.query, top_k=cfg.top_k, filter=cfg.get("filter"), rerank=cfg.rerank,
        query_expansion=cfg.query_expansion, rerank_params=OmegaConf.to_container(cfg.rerank_params),
        query_expansion_params=OmegaConf.to_container(cfg.query_expansion_params), metric=cfg.get("metric"),
        ckpt_path=cfg.get("ckpt_path"), batch_size=cfg.batch_size, num_workers=cfg.num_workers,
    )
    truth = cfg.get("ground_truth") or {}
    query_table = read_identities(truth["query"]) if truth.get("query") else None
    gallery_table = read_identities(truth["gallery"]) if truth.get("gallery") else None
    query_pids = identities(result.query_names, query_table)
    gallery_pids = identities(result.index.names, gallery_table)
    if all(p is None for p in query_pids) or all(p is None for p in gallery_pids):
        query_pids = gallery_pids = None
    print(format_results(result, cfg.print_queries, query_pids, gallery_pids))
    written = write_search_outputs(result, cfg.paths.output_dir, grids=cfg.visual.grids, html=cfg.visual.html,
                                   max_visual_queries=cfg.visual.max_queries, query_pids=query_pids, gallery_pids=gallery_pids)
    grids = sum(k.startswith("grid:") for k in written)
    print(f"\nwrote {written['csv']}" + (f", {written['html']}" if "html" in written else "")
          + (f" and {grids} grid{'s' if grids != 1 else ''} in {Path(cfg.paths.output_dir) / 'grids'}" if grids else ""))


if __name__ == "__main__":
    sys.argv = hydra_argv(sys.argv)
    main()
