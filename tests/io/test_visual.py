"""Pictures: rank grids (borders coloured by identity), the HTML report, and the RankLists callback."""

from __future__ import annotations

import base64
import io
import re
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from src.callbacks.rank_lists import RankLists
from src.data.records import ImageRecord
from src.io.visual import (
    CORRECT_COLOUR,
    QUERY_COLOUR,
    WRONG_COLOUR,
    RankRow,
    Tile,
    html_report,
    rank_figure,
    save_png,
    short_caption,
    thumbnail,
)
from src.metrics.rank import evaluate_rank, query_rank_lists


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def pixels_near(image: Image.Image, colour: str, tolerance: int = 30) -> int:
    array = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(array - rgb(colour)).max(axis=2) <= tolerance).sum())


def grey_tile(seed: int) -> np.ndarray:
    """A grey-ish random image (no pixel near the border colours)."""
    return np.random.default_rng(seed).integers(90, 170, size=(128, 64, 3), dtype=np.uint8)


def rows(correct: list[bool | None], label: str = "") -> list[RankRow]:
    matches = [Tile(grey_tile(i), f"#{i + 1} 0.{i}", "red/black\nadult male", c) for i, c in enumerate(correct)]
    return [RankRow(Tile(grey_tile(99), "query", "q.jpg"), matches, label)]


def test_borders_are_green_for_same_identity_and_red_otherwise(tmp_path):
    mixed = save_png(tmp_path / "mixed.png", rank_figure(rows([True, False, False, True, False]), title="t"))
    unknown = save_png(tmp_path / "unknown.png", rank_figure(rows([None] * 5)))
    more_green = save_png(tmp_path / "green.png", rank_figure(rows([True, True, True, True, False])))
    with Image.open(mixed) as a, Image.open(unknown) as b, Image.open(more_green) as c:
        green, red = pixels_near(a, CORRECT_COLOUR), pixels_near(a, WRONG_COLOUR)
        assert green > 500 and red > 500
        assert red / green == pytest.approx(3 / 2, rel=0.15)  # three red frames, two green ones
        assert pixels_near(a, QUERY_COLOUR) > 200
        assert pixels_near(b, CORRECT_COLOUR) == 0 and pixels_near(b, WRONG_COLOUR) == 0
        assert pixels_near(c, CORRECT_COLOUR) / pixels_near(c, WRONG_COLOUR) == pytest.approx(4, rel=0.15)
        assert a.size[0] > 600 and a.size[1] > 200


def test_matches_wrap_onto_lines(tmp_path):
    one_line = rank_figure(rows([None] * 10), per_line=10)
    two_lines = rank_figure(rows([None] * 20), per_line=10)
    assert one_line.get_size_inches()[0] == pytest.approx(two_lines.get_size_inches()[0])
    assert two_lines.get_size_inches()[1] > 1.8 * one_line.get_size_inches()[1] - 0.5
    assert len(two_lines.axes) == 21
    plt.close("all")


def test_html_report_is_self_contained(tmp_path):
    page = html_report(rows([True, False, None], label="<b>query</b>"), "Search & report", {"filter": "upcolor=red"})
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(uris) == 4
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as image:
            assert image.format == "JPEG" and image.size == (64, 128)
    assert "<b>query</b>" not in page and "&lt;b&gt;query&lt;/b&gt;" in page
    assert "Search &amp; report" in page and "upcolor=red" in page
    assert CORRECT_COLOUR in page and WRONG_COLOUR in page
    assert "http" not in page.replace("charset", "")  # nothing fetched from elsewhere


def test_thumbnail_letterboxes_and_survives_bad_files(tmp_path):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), (255, 0, 0)).save(wide)
    image = thumbnail(wide)
    assert image.shape == (128, 64, 3)
    assert (image[64, 32] == [255, 0, 0]).all() and not (image[2, 32] == [255, 0, 0]).all()
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert thumbnail(tmp_path / "bad.jpg").shape == (128, 64, 3)


def test_short_caption():
    labels = [2, 1, 0, 0, 1, 0, 0, 0, 1, 1, 2, 9]  # adult, backpack, hat, female, upper red, lower multicolour
    assert short_caption(labels) == "red/multi\nadult female\nbackpack hat"


# ------------------------------------------------------------------------------------------------ callback
def retrieval(seed: int = 0, num_query: int = 12, num_gallery: int = 40):
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(1, 7, num_gallery)
    g_camids = rng.integers(1, 4, num_gallery)
    q_pids = rng.integers(1, 7, num_query)
    q_camids = rng.integers(1, 4, num_query)
    distmat = torch.rand(num_query, num_gallery, generator=torch.Generator().manual_seed(seed))
    distmat[torch.from_numpy(q_pids[:, None] == g_pids[None, :])] -= 0.3  # better than chance
    return distmat, q_pids, g_pids, q_camids, g_camids


def test_per_query_average_precision_matches_evaluate_rank():
    distmat, q_pids, g_pids, q_camids, g_camids = retrieval()
    g_pids[:3] = -1  # junk
    aps, first, lists = query_rank_lists(distmat, q_pids, g_pids, q_camids, g_camids, top_k=5)
    expected = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    valid = ~np.isnan(aps)
    assert valid.sum() == expected["num_valid_queries"]
    assert aps[valid].mean() == pytest.approx(expected["mAP"], abs=1e-12)
    assert (first[valid] >= 1).all() and (first[~valid] == 0).all()
    rank1 = np.mean(first[valid] == 1)
    assert rank1 == pytest.approx(expected["rank1"])
    for q, top in enumerate(lists):
        assert len(top) == 5 and (np.diff(distmat[q, top].numpy()) >= 0).all()
        assert not ((g_pids[top] == q_pids[q]) & (g_camids[top] == q_camids[q])).any()
        assert not (g_pids[top] == -1).any()


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
