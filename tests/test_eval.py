"""src.eval's files for a re-ID checkpoint: per-query rankings, rank-list picture, optional distance matrix; and the
network-output cache that lets a sweep over post-processing embed once; a checkpoint of the wrong network kind for
the task is an error before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from src.config import compose_config
from src.evaluation import evaluate
from tests.conftest import ROOT
from tests.models.test_loading import save_attribute_checkpoint
from tests.retrieval.worlds import TINY_NET

SYNTHETIC = ["data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.num_workers=0"]


def test_eval_writes_rankings_rank_lists_and_the_distance_matrix(tiny_strong_ckpt, tmp_path, cache_dir):
    cfg = compose_config("eval", ["task=reid_strong", f"ckpt_path={tiny_strong_ckpt}", "split=val", *SYNTHETIC,
                                  "outputs.distmat=true", "outputs.top_k=5"], tmp_path, cache_dir)
    result = evaluate(cfg)
    rankings = pd.read_csv(tmp_path / "rankings.csv")
    assert list(rankings.columns) == ["query", "rank", "gallery", "distance", "same_identity", "query_ap"]
    assert rankings["query"].nunique() == result["num_queries"] and rankings["rank"].max() <= 5
    distmat = np.load(tmp_path / "distmat.npy")
    names = json.loads((tmp_path / "distmat_names.json").read_text())
    assert distmat.shape == (len(names["queries"]), len(names["gallery"])) == (result["num_queries"], result["num_gallery"])
    # each listed distance is the matrix entry of its (query, gallery) pair, and ranks ascend in distance
    rows, cols = {n: i for i, n in enumerate(names["queries"])}, {n: i for i, n in enumerate(names["gallery"])}
    for row in rankings.itertuples():
        assert abs(distmat[rows[row.query], cols[row.gallery]] - row.distance) < 1e-5
    assert (rankings.groupby("query")["distance"].apply(lambda d: d.is_monotonic_increasing)).all()
    # the mean of the per-query APs is the reported mAP
    assert abs(rankings.groupby("query")["query_ap"].first().mean() - result["mAP"]) < 1e-6
    assert (tmp_path / "rank_lists.png").stat().st_size > 10_000
    assert sorted(result["files"]) == sorted(str(tmp_path / f) for f in
                                             ("rankings.csv", "rank_lists.png", "distmat.npy", "distmat_names.json"))


def test_a_post_processing_sweep_embeds_once(tiny_strong_ckpt, tmp_path, cache_dir, monkeypatch):
    import src.inference

    calls = []
    original = src.inference.classify_loader
    monkeypatch.setattr(src.inference, "classify_loader", lambda *a, **k: calls.append(1) or original(*a, **k))
    results = [evaluate(compose_config("eval", ["task=reid_strong", f"ckpt_path={tiny_strong_ckpt}", "split=val", *SYNTHETIC,
                                                f"postprocess.rerank.enabled={rerank}", f"cache_dir={tmp_path / 'cache'}"],
                                       tmp_path / str(rerank), cache_dir)) for rerank in (False, True, False)]
    assert len(calls) == 1
    assert results[0]["mAP"] == results[2]["mAP"] and results[0]["mAP"] != results[1]["mAP"]


def test_consensus_k_beyond_the_images_is_refused_before_inference(tiny_strong_ckpt, tmp_path, cache_dir, monkeypatch):
    import pytest

    import src.inference
    from src.errors import ConfigError

    monkeypatch.setattr(src.inference, "classify_loader", lambda *a, **k: pytest.fail("inference ran"))
    cfg = compose_config("eval", ["task=reid_strong", f"ckpt_path={tiny_strong_ckpt}", "split=val", *SYNTHETIC,
                                  "attributes.consensus_k=100000"], tmp_path, cache_dir)
    with pytest.raises(ConfigError, match=r"attributes.consensus_k=100000: needs more images than the \d+"):
        evaluate(cfg)


def test_a_reid_task_on_an_attributes_checkpoint_is_a_one_line_error(tmp_path):
    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt, TINY_NET)
    command = [sys.executable, "-m", "src.eval", "task=reid_strong", f"ckpt_path={ckpt}", "data=market_course",
               f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}", "torch_threads=1"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {ckpt}: holds an attributes checkpoint, task=reid_strong "
                                                   "needs a re-ID checkpoint"), done.stderr
    assert not (tmp_path / "run" / "eval_metrics.json").exists()


def test_balanced_accuracy_of_a_hand_computed_case():
    """mA: a head answering the common class everywhere scores 50% on two classes, whatever their shares."""
    import torch

    from src.data.attributes import HEAD_NAMES
    from src.evaluation import balanced_accuracy

    labels = torch.zeros(10, len(HEAD_NAMES), dtype=torch.long)
    labels[:2, :] = 1  # 2 of 10 in class 1
    probabilities = {name: torch.tensor([[0.9, 0.1]] * 10) for name in HEAD_NAMES}  # always class 0: accuracy 80%
    assert balanced_accuracy(probabilities, labels) == {name: 0.5 for name in HEAD_NAMES}
    probabilities = {name: torch.tensor([[0.1, 0.9]] * 2 + [[0.9, 0.1]] * 7 + [[0.1, 0.9]]) for name in HEAD_NAMES}
    assert balanced_accuracy(probabilities, labels) == {name: (1 + 7 / 8) / 2 for name in HEAD_NAMES}
