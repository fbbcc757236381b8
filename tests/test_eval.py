"""src.eval's files for a re-ID checkpoint: per-query rankings, rank-list picture, optional distance matrix; and the
network-output cache that lets a sweep over post-processing embed once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from src.config import compose_config
from src.eval import evaluate

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
    import src.eval

    calls = []
    original = src.eval.classify_loader
    monkeypatch.setattr(src.eval, "classify_loader", lambda *a, **k: calls.append(1) or original(*a, **k))
    results = [evaluate(compose_config("eval", ["task=reid_strong", f"ckpt_path={tiny_strong_ckpt}", "split=val", *SYNTHETIC,
                                                f"postprocess.rerank.enabled={rerank}", f"cache_dir={tmp_path / 'cache'}"],
                                       tmp_path / str(rerank), cache_dir)) for rerank in (False, True, False)]
    assert len(calls) == 1
    assert results[0]["mAP"] == results[2]["mAP"] and results[0]["mAP"] != results[1]["mAP"]


def test_consensus_k_beyond_the_images_is_refused_before_inference(tiny_strong_ckpt, tmp_path, cache_dir, monkeypatch):
    import pytest

    import src.eval
    from src.errors import ConfigError

    monkeypatch.setattr(src.eval, "classify_loader", lambda *a, **k: pytest.fail("inference ran"))
    cfg = compose_config("eval", ["task=reid_strong", f"ckpt_path={tiny_strong_ckpt}", "split=val", *SYNTHETIC,
                                  "attributes.consensus_k=100000"], tmp_path, cache_dir)
    with pytest.raises(ConfigError, match=r"attributes.consensus_k=100000: needs more images than the \d+"):
        evaluate(cfg)
