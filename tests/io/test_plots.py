"""Figures a person looks at: whole-epoch ticks, a legend that hides no bar, an HTML legend that shows what occurs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from src.callbacks.attribute_report import accuracy_bars
from src.callbacks.history import curve
from src.data.attributes import HEAD_NAMES
from src.io.visual import RankRow, Tile, html_report


def test_epoch_curves_have_whole_epoch_ticks():
    history = pd.DataFrame({"epoch": [0, 1, 2], "val/mean_acc": [0.5, 0.6, 0.65]})
    figure = curve(history, {"val/mean_acc": "val"}, "accuracy", "accuracy (%)", scale=100)
    figure.canvas.draw()
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks)), ticks


def test_attribute_legend_covers_no_bar():
    names = [*HEAD_NAMES, "mean"]
    table = pd.DataFrame({"attribute": names, "train_acc": np.full(len(names), 97.0), "val_acc": np.full(len(names), 95.0)})
    figure = accuracy_bars(table)
    figure.canvas.draw()
    axis = figure.axes[0]
    legend = axis.get_legend().get_window_extent()
    bars = [patch.get_window_extent() for patch in axis.patches]
    assert len(bars) == 2 * len(names)
    assert not any(legend.overlaps(bar) for bar in bars)


def grey_tile(correct):
    return Tile(np.zeros((8, 4, 3), dtype=np.uint8), "t", "", correct)


def test_html_legend_names_only_the_borders_on_the_page():
    unknown = html_report([RankRow(grey_tile(None), [grey_tile(None)])], "search")
    legend = unknown.split("<p class='legend'>")[1].split("</p>")[0]
    assert "identity unknown" in legend and "same identity" not in legend and "other identity" not in legend
    known = html_report([RankRow(grey_tile(None), [grey_tile(True), grey_tile(False)])], "search")
    legend = known.split("<p class='legend'>")[1].split("</p>")[0]
    assert "same identity" in legend and "other identity" in legend and "identity unknown" not in legend
