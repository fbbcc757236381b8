"""src/callbacks/rank_lists.py: the RankLists callback keeps the best validation epoch's best and worst queries and
draws ``cmc_curve.png`` and ``rank_lists.png`` at the end of fit."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from src.callbacks.rank_lists import RankLists
from src.data.records import ImageRecord
from src.io.visual import CORRECT_COLOUR, QUERY_COLOUR, WRONG_COLOUR
from tests.io.test_visual import grey_tile, pixels_near, retrieval


def fake_run(tmp_path, image):
    """Validation records (one image file each), a trainer and a module exposing ``val_retrieval``."""
    distmat, q_pids, g_pids, q_camids, g_camids = retrieval()
    pids, camids = np.concatenate([q_pids, g_pids]), np.concatenate([q_camids, g_camids])
    records = [ImageRecord(image, int(p), int(c)) for p, c in zip(pids, camids)]
    module = SimpleNamespace(val_retrieval={
        "distmat": distmat, "q_pids": q_pids, "g_pids": g_pids, "q_camids": q_camids, "g_camids": g_camids,
        "q_index": np.arange(len(q_pids)), "g_index": len(q_pids) + np.arange(len(g_pids)), "cmc": np.linspace(0.5, 1.0, 10)})
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={}, current_epoch=0, is_global_zero=True,
                              datamodule=SimpleNamespace(val_records=records))
    return trainer, module


def test_callback_keeps_the_best_epoch_and_draws_it(tmp_path):
    image = tmp_path / "person.png"
    Image.fromarray(grey_tile(1)).save(image)
    trainer, module = fake_run(tmp_path, image)
    callback = RankLists(str(tmp_path / "run"), num_queries=2, top_k=4)
    trainer.sanity_checking = True  # sanity check: ignored
    trainer.callback_metrics = {"val/mAP": torch.tensor(0.9)}
    callback.on_validation_end(trainer, module)
    assert callback.best is None
    trainer.sanity_checking = False
    for epoch, score in enumerate([0.3, 0.5, 0.4]):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"val/mAP": torch.tensor(score)}
        if epoch == 2:
            module.val_retrieval["distmat"] = module.val_retrieval["distmat"] + 100  # a worse epoch: must not be kept
        callback.on_validation_end(trainer, module)
    assert callback.best_epoch == 1 and callback.best_score == pytest.approx(0.5)
    assert all(d < 100 for row in callback.best["rows"] for _, d, _ in row["matches"])
    module.val_retrieval["cmc"][:] = 0  # the kept data is a copy
    assert callback.best["cmc"][0] == 0.5

    callback.on_fit_end(trainer, module)
    run = tmp_path / "run"
    for name in ("cmc_curve.png", "rank_lists.png"):
        with Image.open(run / name) as picture:
            assert picture.size[0] > 400 and picture.size[1] > 250, name
    rows = callback.rows(trainer.datamodule.val_records)
    labels = [r.label for r in rows]
    assert len(rows) == 4 and labels[0].startswith("best") and labels[-1].startswith("worst")
    aps = [float(re.search(r"AP ([0-9.]+)", label)[1]) for label in labels]
    best, worst = aps[:2], aps[2:]
    assert best == sorted(best, reverse=True) and worst == sorted(worst) and min(best) >= max(worst)
    assert all(len(r.matches) == 4 and all(t.correct is not None for t in r.matches) for r in rows)
    with Image.open(run / "rank_lists.png") as picture:
        assert pixels_near(picture, CORRECT_COLOUR) > 300 and pixels_near(picture, WRONG_COLOUR) > 300


def test_callback_state_survives_a_checkpoint(tmp_path):
    image = tmp_path / "person.png"
    Image.fromarray(grey_tile(1)).save(image)
    trainer, module = fake_run(tmp_path, image)
    trainer.callback_metrics = {"val/mAP": torch.tensor(0.5)}
    callback = RankLists(str(tmp_path / "a"), num_queries=2, top_k=4)
    callback.on_validation_end(trainer, module)
    torch.save(callback.state_dict(), tmp_path / "state.pt")
    resumed = RankLists(str(tmp_path / "b"), num_queries=2, top_k=4)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))  # plain data only
    trainer.callback_metrics = {"val/mAP": torch.tensor(0.4)}  # a worse epoch after the resume
    resumed.on_validation_end(trainer, module)
    assert resumed.best_score == pytest.approx(0.5) and resumed.best["rows"] == callback.best["rows"]
    callback.on_fit_end(trainer, module)
    resumed.on_fit_end(trainer, module)
    assert (tmp_path / "a" / "rank_lists.png").read_bytes() == (tmp_path / "b" / "rank_lists.png").read_bytes()


def test_callback_writes_nothing_off_rank_zero(tmp_path):
    image = tmp_path / "person.png"
    Image.fromarray(grey_tile(1)).save(image)
    trainer, module = fake_run(tmp_path, image)
    trainer.callback_metrics = {"val/mAP": torch.tensor(0.5)}
    callback = RankLists(str(tmp_path / "run"))
    callback.on_validation_end(trainer, module)
    trainer.is_global_zero = False
    callback.on_fit_end(trainer, module)
    assert not (tmp_path / "run").exists()


def test_rank_lists_in_a_short_reid_run(tmp_path, cache_dir):
    from src.train import train
    from tests.conftest import compose_config
    from tests.models.test_loading import save_attribute_checkpoint
    from tests.retrieval.worlds import TINY_NET

    stage1 = tmp_path / "stage1.ckpt"
    torch.manual_seed(0)
    save_attribute_checkpoint(stage1, TINY_NET)
    cfg = compose_config("train", [
        "task=reid", f"model.stage1_ckpt={stage1}", "data.num_workers=0", "data.source.num_train_ids=16",
        "data.source.num_test_ids=2", "data.val_ratio=0.5", "data.height=64", "data.width=32", "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "predict_test=false",
        "callbacks.rank_lists.num_queries=2", "callbacks.rank_lists.top_k=6",
    ], tmp_path / "reid", cache_dir)
    train(cfg)
    for name, minimum in (("cmc_curve.png", 10_000), ("rank_lists.png", 30_000)):
        path = tmp_path / "reid" / name
        assert path.stat().st_size > minimum, name
    with Image.open(tmp_path / "reid" / "rank_lists.png") as picture:
        assert pixels_near(picture, QUERY_COLOUR) > 200
        assert pixels_near(picture, CORRECT_COLOUR) + pixels_near(picture, WRONG_COLOUR) > 1000


def test_a_late_first_match_is_labelled_and_queries_without_a_match_are_left_out(tmp_path):
    from src.callbacks.rank_lists import rank_rows, select_queries

    # query 0 (identity 1): its two matches are 5th and 6th; query 1 (identity 9) has no match in the gallery
    retrieval_data = {"distmat": torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]),
                      "q_pids": np.array([1, 9]), "g_pids": np.array([2, 3, 4, 5, 1, 1]),
                      "q_camids": np.array([1, 1]), "g_camids": np.full(6, 2), "q_index": np.array([0, 1]),
                      "g_index": np.arange(2, 8), "cmc": np.zeros(6)}
    selected = select_queries(retrieval_data, num_queries=3, top_k=2)
    assert [row["kind"] for row in selected["rows"]] == ["best", "worst"]  # the one valid query, both ways
    row = selected["rows"][0]
    assert row["query"] == 0 and row["first"] == 5 and row["ap"] == pytest.approx((1 / 5 + 2 / 6) / 2)
    assert row["matches"] == [[2, pytest.approx(0.1), False], [3, pytest.approx(0.2), False]]
    image = tmp_path / "person.png"
    Image.fromarray(grey_tile(1)).save(image)
    records = [ImageRecord(image, pid, 1) for pid in (1, 9, 2, 3, 4, 5, 1, 1)]
    labels = [r.label for r in rank_rows(selected["rows"], records, top_k=2)]
    assert labels == ["best: AP 0.27\n1st match #5", "worst: AP 0.27\n1st match #5"]
