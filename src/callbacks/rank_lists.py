"""Pictures of the validation ranking at the best epoch: ``cmc_curve.png`` and ``rank_lists.png``.

After every validation the callback keeps a copy of ``pl_module.val_retrieval`` (distance matrix, labels,
CMC) when ``monitor`` improves; at the end of fit (rank 0) it draws the CMC curve of that epoch and the
``num_queries`` best and worst validation queries by average precision, each with its ``top_k`` gallery
images (green border: same identity, red: another one). Gallery images of the query's identity *and*
camera are left out of the lists, as the Market-1501 protocol leaves them out of the scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from src.io.plots import cmc_figure
from src.io.visual import RankRow, Tile, rank_figure, save_png, thumbnail
from src.metrics.rank import query_rank_lists


def select_queries(retrieval: dict, num_queries: int, top_k: int) -> dict:
    """The ``num_queries`` best and worst queries by AP of one validation epoch, with their top-k valid matches.

    Returns plain data (lists, numbers and a tensor): ``cmc`` and ``rows``, each row ``{kind, ap, first, query,
    matches}`` with ``query`` and every match as an index into the datamodule's ``val_records`` and matches as
    ``[record index, distance, same identity]``. Small enough to keep in checkpoints, so a resumed run still draws
    the best epoch.
    """
    r = retrieval
    aps, first, lists = query_rank_lists(r["distmat"], r["q_pids"], r["g_pids"], r["q_camids"], r["g_camids"], top_k)
    valid = np.flatnonzero(~np.isnan(aps))
    by_ap = valid[np.argsort(-aps[valid], kind="stable")]
    n = min(num_queries, max(1, len(by_ap) // 2)) if len(by_ap) else 0
    chosen = [("best", q) for q in by_ap[:n]] + [("worst", q) for q in by_ap[::-1][:n]]
    distmat = torch.as_tensor(r["distmat"])
    rows = [{
        "kind": kind, "ap": float(aps[q]), "first": int(first[q]), "query": int(r["q_index"][q]),
        "matches": [[int(r["g_index"][g]), float(distmat[q, g]), bool(r["g_pids"][g] == r["q_pids"][q])] for g in lists[q]],
    } for kind, q in chosen]
    return {"cmc": torch.tensor(np.asarray(r["cmc"], dtype=np.float64)), "rows": rows}  # a copy


class RankLists(pl.Callback):
    def __init__(self, output_dir: str, monitor: str = "val/mAP", mode: str = "max", num_queries: int = 3,
                 top_k: int = 10):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be max or min, got {mode!r}")
        self.output_dir = Path(output_dir)
        self.monitor, self.mode = monitor, mode
        self.num_queries, self.top_k = num_queries, top_k
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.best: dict | None = None  # select_queries() of the best epoch so far

    def _improved(self, score: float) -> bool:
        if self.best_score is None or not np.isfinite(self.best_score):
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        retrieval = getattr(pl_module, "val_retrieval", None)
        if trainer.sanity_checking or retrieval is None or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if self._improved(score):
            self.best_score, self.best_epoch = score, trainer.current_epoch
            self.best = select_queries(retrieval, self.num_queries, self.top_k)

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score, self.best_epoch = state_dict.get("best_score"), state_dict.get("best_epoch")
        self.best = state_dict.get("best")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best is None or not trainer.is_global_zero:
            return
        mAP = self.best_score if self.monitor.endswith("mAP") else None
        save_png(self.output_dir / "cmc_curve.png", cmc_figure(self.best["cmc"], mAP, self.best_epoch), colours=0)
        rows = self.rows(trainer.datamodule.val_records)
        if rows:
            title = (f"Validation rank lists at epoch {self.best_epoch}: the {len(rows) // 2} best and worst queries by AP\n"
                     "(green: same identity, red: another; the query's identity on its own camera is left out, as in scoring)")
            save_png(self.output_dir / "rank_lists.png", rank_figure(rows, per_line=self.top_k, title=title))

    def rows(self, records) -> list[RankRow]:
        """Rank rows (thumbnails) of the kept best and worst queries; ``records``: the datamodule's val_records."""
        return rank_rows((self.best or {}).get("rows", []), records, self.top_k)


def rank_rows(selected: list[dict], records, top_k: int) -> list[RankRow]:
    """Thumbnail rows of ``select_queries`` rows, whose indices point into ``records``."""
    rows = []
    for row in selected:
        record = records[row["query"]]
        query = Tile(thumbnail(record.path), "query", f"id {record.pid} cam {record.camid}")
        tiles = []
        for rank, (index, distance, same) in enumerate(row["matches"], start=1):
            match = records[index]
            tiles.append(Tile(thumbnail(match.path), f"#{rank} {distance:.3f}", f"id {match.pid} cam {match.camid}", same))
        label = f"{row['kind']}: AP {row['ap']:.2f}" + (f"\n1st match #{row['first']}" if row["first"] > top_k else "")
        rows.append(RankRow(query, tiles, label))
    return rows
