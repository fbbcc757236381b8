"""Pictures of rankings: a PNG grid per query (query + top-k, distances, attribute captions, green/red borders
when identities are known) and a self-contained HTML report (thumbnails inlined as base64 JPEG).

Used by ``python -m src.search`` and by the ``RankLists`` callback (best / worst validation queries).
PNGs are written as 256-colour palette images: the thumbnails look the same and the files are 3-4x smaller.
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from src.data.attributes import CARRIED, class_names
from src.data.images import load_image
from src.data.records import DataError
from src.io.atomic import atomic_path, write_text

THUMB_SIZE = (64, 128)  # (width, height): Market-1501 crops
QUERY_COLOUR = "#2166ac"
CORRECT_COLOUR = "#1a9850"
WRONG_COLOUR = "#d73027"
NEUTRAL_COLOUR = "#9e9e9e"
PLACEHOLDER = (225, 225, 225)


@dataclass
class Tile:
    """One image of a rank list. ``correct``: True (green border), False (red), None (identity unknown: grey)."""

    image: np.ndarray  # (H, W, 3) uint8
    title: str = ""
    caption: str = ""
    correct: bool | None = None


@dataclass
class RankRow:
    """A query and its ranked matches; ``label`` is written beside the query (e.g. ``best query, AP 1.00``)."""

    query: Tile
    matches: list[Tile] = field(default_factory=list)
    label: str = ""


def thumbnail(path: str | Path, size: tuple[int, int] = THUMB_SIZE) -> np.ndarray:
    """The image letter-boxed into ``size`` (width, height), as (H, W, 3) uint8; a grey tile if it cannot be read."""
    try:
        image = Image.fromarray(load_image(Path(path), max_side=4 * max(size)).permute(1, 2, 0).numpy())
    except DataError:
        return np.full((size[1], size[0], 3), PLACEHOLDER, dtype=np.uint8)
    return np.asarray(ImageOps.pad(image, size, method=Image.Resampling.BICUBIC, color=PLACEHOLDER))


_SHORT = {"multicolor": "multi", "teenager": "teen"}


def short_caption(labels: Sequence[int]) -> str:
    """Short lines from one class index per head: ``red/black``, ``adult female``, ``backpack hat`` (if any)."""
    value = class_names(labels)
    lines = [f"{_SHORT.get(value['upcolor'], value['upcolor'])}/{_SHORT.get(value['downcolor'], value['downcolor'])}",
             f"{_SHORT.get(value['age'], value['age'])} {value['gender']}"]
    carried = [name for name in CARRIED if value[name] == "yes"]
    if carried:
        lines.append(" ".join(carried).replace("backpack bag handbag", "3 bags"))
    return "\n".join(lines)


def border_colour(correct: bool | None) -> str:
    return NEUTRAL_COLOUR if correct is None else (CORRECT_COLOUR if correct else WRONG_COLOUR)


# layout in inches: a 64x128 thumbnail, its title above and a caption of up to 4 short lines below
_IMAGE = (0.62, 1.24)
_CELL_W, _TITLE_H, _LINE_H, _GAP_H = 0.84, 0.17, 0.092, 0.12
_QUERY_GAP, _LABEL_W, _MARGIN, _HEADER_H = 0.28, 0.32, 0.08, 0.36


def _draw(figure, box, tile: Tile, colour: str, width: float) -> None:
    axis = figure.add_axes(box)
    axis.imshow(tile.image, interpolation="bilinear", aspect="auto")
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
    axis.set_title(tile.title, fontsize=6.8, pad=2.5)
    if tile.caption:
        axis.text(0.5, -0.025, tile.caption, transform=axis.transAxes, ha="center", va="top", fontsize=5.8,
                  linespacing=1.1)
    return axis


def rank_figure(rows: Sequence[RankRow], per_line: int = 10, title: str | None = None):
    """One block per row: the query (blue border), a gap, then its matches, ``per_line`` per line.

    Matches are framed green (same identity), red (another identity) or thin grey (identity unknown).
    """
    from src.io.plots import plt

    if not rows:
        raise ValueError("nothing to draw: no rank rows")
    tiles = [t for r in rows for t in (r.query, *r.matches)]
    caption_lines = max(t.caption.count("\n") + 1 if t.caption else 0 for t in tiles)
    cell_h = _TITLE_H + _IMAGE[1] + caption_lines * _LINE_H + _GAP_H
    lines = [max(1, math.ceil(len(r.matches) / per_line)) for r in rows]
    columns = max(1, min(per_line, max(len(r.matches) for r in rows)))
    left = _MARGIN + (_LABEL_W if any(r.label for r in rows) else 0)
    width = left + _CELL_W * (columns + 1) + _QUERY_GAP + _MARGIN
    if title:  # wrapped to the figure width (about 15 characters of 8.5 pt per inch)
        title = "\n".join(textwrap.fill(part, max(20, int(15 * width))) for part in title.split("\n"))
    header = _HEADER_H + 0.14 * title.count("\n") if title else _MARGIN
    height = header + cell_h * sum(lines) + _MARGIN
    figure = plt.figure(figsize=(width, height))

    def box(line: int, column: int) -> list[float]:
        x = left + column * _CELL_W + (_QUERY_GAP if column else 0) + (_CELL_W - _IMAGE[0]) / 2
        y = height - header - line * cell_h - _TITLE_H - _IMAGE[1]
        return [x / width, y / height, _IMAGE[0] / width, _IMAGE[1] / height]

    line = 0
    for number, (row, row_lines) in enumerate(zip(rows, lines)):
        if number:  # a thin rule between rows
            y = (height - header - line * cell_h + 0.02) / height
            figure.add_artist(plt.Line2D([_MARGIN / width, 1 - _MARGIN / width], [y, y], color="#dddddd", linewidth=0.8))
        axis = _draw(figure, box(line, 0), row.query, QUERY_COLOUR, 3.0)
        if row.label:
            axis.text(-0.1, 0.5, row.label, transform=axis.transAxes, rotation=90, ha="right", va="center", fontsize=7.5,
                      multialignment="center")
        for j, tile in enumerate(row.matches):
            _draw(figure, box(line + j // per_line, 1 + j % per_line), tile, border_colour(tile.correct),
                  3.0 if tile.correct is not None else 1.0)
        if not row.matches:
            x, y, _, h = box(line, 1)
            figure.text(x, y + h / 2, "no match", fontsize=9, va="center")
        line += row_lines
    if title:
        figure.text(0.5, 1 - 0.1 / height, title, ha="center", va="top", fontsize=8.5)
    return figure


def save_png(path: str | Path, figure, dpi: int = 110, colours: int = 256) -> Path:
    """Render ``figure`` and write it atomically as a palette PNG of ``colours`` colours (0: full RGB)."""
    from src.io.plots import plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(figure)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if colours:
        image = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return Path(path)


# ------------------------------------------------------------------------------------------------ HTML report
def jpeg_data_uri(image: np.ndarray, quality: int = 85) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1em; margin: 1.2em 0 0.3em; }
table.meta td { padding: 0 1em 0 0; font-size: 0.9em; } table.meta td:first-child { color: #666; }
.row { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; }
figure { margin: 0; width: 72px; font-size: 10px; text-align: center; }
figure img { width: 64px; height: 128px; border: 4px solid #9e9e9e; display: block; }
figure.query { margin-right: 14px; }
figcaption { white-space: pre-line; line-height: 1.2; word-break: break-all; }
.legend span { display: inline-block; padding: 0 0.5em; margin-right: 0.5em; color: white; }
"""


def _figure_html(tile: Tile, colour: str, css_class: str = "") -> str:
    text = html.escape(f"{tile.title}\n{tile.caption}".strip())
    return (f'<figure class="{css_class}"><img src="{jpeg_data_uri(tile.image)}" style="border-color:{colour}" '
            f'alt="{html.escape(tile.title)}"><figcaption>{text}</figcaption></figure>')


def _legend_html(rows: Sequence[RankRow]) -> str:
    """The border colours that occur on the page: green/red only where identities are known."""
    known = {tile.correct for row in rows for tile in row.matches}
    entries = [(QUERY_COLOUR, "query")]
    entries += [(CORRECT_COLOUR, "same identity"), (WRONG_COLOUR, "other identity")] if known - {None} else []
    entries += [(NEUTRAL_COLOUR, "identity unknown")] if None in known else []
    return "<p class='legend'>" + "".join(f"<span style='background:{c}'>{t}</span>" for c, t in entries) + "</p>"


def html_report(rows: Sequence[RankRow], title: str, meta: dict[str, object] | None = None,
                row_titles: Sequence[str] | None = None) -> str:
    """A self-contained HTML page: a table of ``meta`` facts, then one line of thumbnails per rank row."""
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if meta:
        parts.append("<table class='meta'>" + "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items()) + "</table>")
    parts.append(_legend_html(rows))
    for i, row in enumerate(rows):
        heading = row_titles[i] if row_titles else row.label or row.query.title
        parts.append(f"<h2>{html.escape(heading)}</h2><div class='row'>")
        parts.append(_figure_html(row.query, QUERY_COLOUR, "query"))
        parts.extend(_figure_html(t, border_colour(t.correct)) for t in row.matches)
        if not row.matches:
            parts.append("<p>no match</p>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html_report(path: str | Path, rows: Sequence[RankRow], title: str, meta: dict | None = None,
                      row_titles: Sequence[str] | None = None) -> Path:
    return write_text(path, html_report(rows, title, meta, row_titles))
