"""Validation curves of several training runs against training minutes, side by side: one figure and one table.

Reads each run folder's ``metrics.csv`` (the validation rows carry ``time/train_min``, Lightning's fit clock, so
clustering rounds and validation passes count as spent time). The table gives, per run, the last validation at or
before each budget ("-" past the run's end, with 5% slack); clustering rounds (``pseudo/*`` rows) are marked on the curves.

    python bench/compare_runs.py --run labelled=outputs/.../course_128x64_2h_step \\
        --run "labelled + unlabelled=outputs/.../course_128x64_2h_pseudo" --minutes 30 60 90 115 --out curves.png

``--start LABEL=MINUTES`` puts a run's clock on after MINUTES of another: a fine-tuning started from a checkpoint
that an earlier run saved at that minute (``model.init_weights``), so both stages sit on one time axis.

``--epochs E ...`` compares at equal images instead (runs whose epochs hold the same images, e.g. one process and
DDP with the same global batch): the figure's axis is the epoch and the table gives each run's validation at E.

    python bench/compare_runs.py --run "1 process=..." --run "DDP=..." --epochs 5 10 20 28 --out ddp_vs_one.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.io.plots import plt  # noqa: E402  the project's file-only matplotlib backend

PANELS = {"val/mAP": "mAP (%)", "val/rank1": "rank-1 (%)", "val/mean_acc": "attribute mean (%)"}


def validation_rows(run: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Validation rows sorted by minutes, and the minutes at which clustering rounds happened (may be empty)."""
    path = run / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no metrics.csv (not a training run folder?)")
    history = pd.read_csv(path)
    missing = {"epoch", "time/train_min", *PANELS} - set(history.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {', '.join(sorted(missing))}")
    val = history.dropna(subset=["val/mAP", "time/train_min"]).sort_values("time/train_min")
    rounds = pd.Series(dtype=float)
    if "pseudo/round" in history.columns:
        round_epochs = history.dropna(subset=["pseudo/round"])["epoch"]
        rounds = val.set_index("epoch")["time/train_min"].reindex(round_epochs).dropna()
    return val, rounds


def at_minutes(val: pd.DataFrame, minutes: list[float]) -> list[pd.Series | None]:
    """The last validation at or before each budget; None before the first one or past the run's end (+5%)."""
    clock, end = val["time/train_min"], val["time/train_min"].max()
    return [val[clock <= m].iloc[-1] if (clock <= m).any() and m <= 1.05 * end else None for m in minutes]


def at_epochs(val: pd.DataFrame, epochs: list[int]) -> list[pd.Series | None]:
    """The last validation at or before each epoch; None before the first one or past the run's last epoch."""
    done, last = val["epoch"], val["epoch"].max()
    return [val[done <= e].iloc[-1] if (done <= e).any() and e <= last else None for e in epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER")
    parser.add_argument("--minutes", type=float, nargs="+", default=[30, 60, 90, 120])
    parser.add_argument("--out", default="compare_runs.png")
    parser.add_argument("--start", action="append", default=[], metavar="LABEL=MINUTES",
                        help="the run LABEL started after MINUTES of training (a fine-tuning from another run's checkpoint)")
    parser.add_argument("--epochs", type=int, nargs="+", default=None,
                        help="compare at these epochs (equal images) instead of minutes; the figure's axis is the epoch")
    args = parser.parse_args()
    x_key = "epoch" if args.epochs else "time/train_min"
    runs = {}
    for item in args.run:
        label, sep, folder = item.partition("=")
        if not sep:
            raise SystemExit(f"--run {item!r}: expected LABEL=FOLDER")
        runs[label] = validation_rows(Path(folder))
    for item in args.start:
        label, sep, minutes = item.rpartition("=")
        if not sep or label not in runs:
            raise SystemExit(f"--start {item!r}: expected LABEL=MINUTES with the LABEL of a --run ({', '.join(runs)})")
        try:
            offset = float(minutes)
        except ValueError:
            raise SystemExit(f"--start {item!r}: {minutes!r} is not a number of minutes") from None
        val, rounds = runs[label]
        runs[label] = (val.assign(**{"time/train_min": val["time/train_min"] + offset}), rounds + offset)

    figure, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 4))
    for (label, (val, rounds)), color in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for axis, (key, title) in zip(axes, PANELS.items()):
            axis.plot(val[x_key], 100 * val[key], marker=".", color=color, label=label)
            for minute in [] if args.epochs else rounds:
                axis.axvline(minute, color=color, alpha=0.25, linestyle="--")
            axis.set_xlabel("epoch (equal images)" if args.epochs else "training time (min)")
            axis.set_title(title)
            axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(args.out, dpi=100)

    points = [f"epoch {e}" for e in args.epochs] if args.epochs else [f"{m:g} min" for m in args.minutes]
    print("| run | " + " | ".join(f"{point}: mAP / rank-1 / attr" for point in points) + " | best mAP (epoch, min) |")
    print("|---" * (len(points) + 2) + "|")
    for label, (val, _) in runs.items():
        rows = at_epochs(val, args.epochs) if args.epochs else at_minutes(val, args.minutes)
        cells = ["-" if row is None else f"{100 * row['val/mAP']:.2f} / {100 * row['val/rank1']:.2f} / {100 * row['val/mean_acc']:.2f}"
                 for row in rows]
        best = val.loc[val["val/mAP"].idxmax()]
        cells.append(f"{100 * best['val/mAP']:.2f} ({int(best['epoch'])}, {best['time/train_min']:.0f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
