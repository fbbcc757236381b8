"""Figures of the run folder (curves, per-attribute bars, threshold sweep, CMC). The one place that picks
matplotlib's file-only backend; every module that draws imports pyplot from here."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def curve(history: pd.DataFrame, metrics: dict[str, str], title: str, ylabel: str, scale: float = 1.0,
          x: str = "epoch", xlabel: str | None = None):
    figure, axis = plt.subplots(figsize=(7, 4))
    for key, label in metrics.items():
        axis.plot(history[x], scale * history[key], marker="o", label=label)
    axis.set_xlabel(xlabel or x)
    if x == "epoch":
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


def accuracy_bars(table: pd.DataFrame):
    figure, axis = plt.subplots(figsize=(10, 4))
    positions = range(len(table))
    axis.bar([p - 0.2 for p in positions], table["train_acc"], width=0.4, label="train")
    axis.bar([p + 0.2 for p in positions], table["val_acc"], width=0.4, label="val")
    axis.set_xticks(list(positions), table["attribute"], rotation=45, ha="right")
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Accuracy per attribute (best epoch)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside the axes: it never hides a bar
    figure.tight_layout()
    axis.grid(axis="y", alpha=0.3)
    return figure


def sweep_plot(table: pd.DataFrame, objective: str):
    figure, axis = plt.subplots(figsize=(7, 4))
    for column, label in (("mAP", "mAP"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        axis.plot(table["threshold"], 100 * table[column], label=label)
    chosen = float(table.loc[table["chosen"], "threshold"].iloc[0])
    axis.axvline(chosen, color="k", linestyle="--", label=f"chosen t={chosen:g} ({objective})")
    axis.set_xlabel("distance threshold")
    axis.set_ylabel("%")
    axis.set_title("Thresholded retrieval on the validation split")
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


def cmc_figure(cmc, mAP: float | None = None, epoch: int | None = None):
    cmc = 100 * np.asarray(cmc, dtype=float)
    ranks = np.arange(1, len(cmc) + 1)
    figure, axis = plt.subplots(figsize=(6, 3.8))
    axis.plot(ranks, cmc, marker="o", color="#2166ac")
    for k in (1, 5, 10):
        if k <= len(cmc):
            axis.annotate(f"{cmc[k - 1]:.1f}%", (k, cmc[k - 1]), textcoords="offset points", xytext=(0, -14),
                          ha="center", fontsize=8)
    axis.set_xticks(ranks)
    axis.set_xlabel("rank")
    axis.set_ylabel("matching rate (%)")
    axis.set_ylim(max(0.0, min(cmc) - 10), 101)
    title = "CMC on the validation split"
    if epoch is not None:
        title += f", best epoch {epoch}"
    if mAP is not None:
        title += f" (mAP {100 * mAP:.1f}%)"
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    return figure


def reliability_figure(bins: list[dict], ece: float, title: str):
    """Calibration's reliability diagram: each probability bin's mean P(same) against its observed match rate."""
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    axis.plot([b["mean_p"] for b in bins], [b["match_rate"] for b in bins], marker="o", label=f"measured (ECE {ece:.3f})")
    for b in bins:
        axis.annotate(f"{b['pairs']:,}", (b["mean_p"], b["match_rate"]), fontsize=6, textcoords="offset points",
                      xytext=(3, -9))
    axis.set_xlabel("predicted P(same identity)")
    axis.set_ylabel("observed share of same-identity pairs")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure
