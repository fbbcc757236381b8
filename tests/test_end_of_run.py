"""The end-of-run prediction of a re-ID training (reid_test.txt + classification_test.csv for test/ and queries/),
on the code path a course-sized run takes: both the queries and the gallery above the compile threshold."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import src.inference
from src.inference import is_compiled
from src.models.backbones import Backbone
from src.train import train
from tests.conftest import SMALL_DATA


def test_reid_training_writes_test_outputs_with_compiled_inference(make_cfg, tmp_path, monkeypatch, caplog):
    import logging

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(src.inference, "COMPILE_MIN_IMAGES", 1)  # every pass compiles, as 2,248 + 19,688 images do
    compiled = []
    prepare = src.inference.fastest_inference

    def spy(net, num_images, compile="auto"):
        net = prepare(net, num_images, compile)
        compiled.extend(is_compiled(m.body) for m in net.modules() if isinstance(m, Backbone))
        return net

    monkeypatch.setattr(src.inference, "fastest_inference", spy)
    monkeypatch.setattr("src.predict.fastest_inference", spy, raising=False)
    cfg = make_cfg(["task=reid_strong", *SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                    "data.height=64", "data.width=32"])
    train(cfg)
    out = tmp_path / "run"
    root = Path(cfg.data.root)
    queries, gallery = sorted(p.name for p in (root / "queries").iterdir()), sorted(p.name for p in (root / "test").iterdir())
    lines = (out / "reid_test.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == queries
    assert pd.read_csv(out / "classification_test.csv")["id"].tolist() == gallery
    assert compiled and all(compiled)  # the path really ran compiled, not around it
    # announced before it starts: how many images, for which files, how to skip it
    announced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("end of run:")]
    assert announced == [f"end of run: predicting the {len(gallery) + len(queries)} unlabelled images ({len(gallery)} in "
                         f"test/, {len(queries)} in queries/) with the best checkpoint for reid_test.txt and "
                         "classification_test.csv; this can take minutes on a CPU (an estimate follows the first "
                         "batches); predict_test=false skips it"]
