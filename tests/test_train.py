"""End-to-end runs on the synthetic dataset: fast_dev_run, a short run that learns, stage 2, eval, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.attributes import CSV_COLUMNS, HEAD_NAMES, UPPER_COLOURS
from src.train import train


def test_fast_dev_run_attributes(make_cfg, tmp_path):
    from tests.conftest import SMALL_DATA

    metrics = train(make_cfg(["task=attributes", "debug=fast", *SMALL_DATA]))
    assert 0.0 <= metrics["val/mean_acc"] <= 1.0
    assert (tmp_path / "run" / "config.yaml").is_file()


@pytest.fixture(scope="module")
def trained_attributes(run_folder, cache_dir):
    """A short real run: pretrained lite0, 4 epochs on 60 synthetic identities (trained once per test run)."""
    from tests.conftest import compose_config, made_once

    overrides = ["task=attributes", "data.num_workers=0", "data.source.num_train_ids=60", "data.source.num_test_ids=8",
                 "data.val_ratio=0.3", "data.batch_size=16", "model/optimizer=adamw", "model.optimizer.lr=1e-3",
                 "trainer.max_epochs=4", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]

    def build(out: Path) -> Path:
        metrics = train(compose_config("train", overrides, out, cache_dir))
        (out / "fixture_metrics.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}))
        return out

    out = made_once(run_folder, "trained_attributes", build)
    return compose_config("train", overrides, out, cache_dir), json.loads((out / "fixture_metrics.json").read_text()), out


def majority_baseline(cfg) -> float:
    """Mean over heads of the val accuracy of always predicting the training split's majority class."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    train_labels = np.array([r.labels for r in datamodule.train_records])
    val_labels = np.array([r.labels for r in datamodule.val_records])
    accuracies = []
    for head in range(len(HEAD_NAMES)):
        majority = np.bincount(train_labels[:, head]).argmax()
        accuracies.append((val_labels[:, head] == majority).mean())
    return float(np.mean(accuracies))


def test_short_run_beats_the_majority_baseline(trained_attributes):
    cfg, metrics, out = trained_attributes
    baseline = majority_baseline(cfg)
    assert metrics["val/mean_acc_best"] > baseline + 0.05, (metrics["val/mean_acc_best"], baseline)


def test_run_folder_holds_the_report_outputs(trained_attributes):
    cfg, metrics, out = trained_attributes
    table = pd.read_csv(out / "attribute_accuracy.csv")
    assert table["attribute"].tolist() == [*HEAD_NAMES, "mean"]
    assert table["val_acc"].iloc[-1] == pytest.approx(table["val_acc"].iloc[:-1].mean(), abs=0.02)
    for name in ("attribute_accuracy.png", "accuracy_curve.png", "loss_curve.png", "metrics.csv"):
        assert (out / name).stat().st_size > 0, name
    predictions = pd.read_csv(out / "classification_test.csv")
    assert tuple(predictions.columns) == CSV_COLUMNS
    gallery = sorted(p.name for p in (Path(cfg.data.root) / "test").iterdir())
    assert predictions["id"].tolist() == gallery
    probabilities = json.loads((out / "attributes.json").read_text())
    assert sorted(probabilities) == gallery
    first, row = probabilities[gallery[0]], predictions.iloc[0]
    assert list(first) == list(HEAD_NAMES) and abs(sum(first["upcolor"].values()) - 1) < 1e-3
    set_colours = [c[2:] for c in UPPER_COLOURS if row[c] == 2]
    assert max(first["upcolor"], key=first["upcolor"].get) == (set_colours[0] if set_colours else "multicolor")
    assert json.loads((out / "metrics.json").read_text())["best_checkpoint"].endswith(".ckpt")


def test_report_aggregator_trains_on_the_frozen_stage1(trained_attributes, tmp_path, cache_dir):
    from tests.conftest import compose_config

    _, _, attributes_out = trained_attributes
    stage1 = json.loads((attributes_out / "metrics.json").read_text())["best_checkpoint"]
    cfg = compose_config(
        "train",
        [
            "task=reid",
            f"model.stage1_ckpt={stage1}",
            "data.source.num_train_ids=60",
            "data.source.num_test_ids=8",
            "data.val_ratio=0.3",
            "trainer.max_epochs=6",
            "trainer.enable_progress_bar=false",
            "~callbacks.progress_bar",
        ],
        tmp_path / "reid",
        cache_dir,
    )
    metrics = train(cfg)
    assert metrics["val/mAP_best"] > 0.2
    assert metrics["train/dist_an"] > metrics["train/dist_ap"]
    lines = (tmp_path / "reid" / "reid_test.txt").read_text().splitlines()
    truth = pd.read_csv(Path(cfg.data.root) / "queries_ground_truth.csv")
    assert [line.split(":")[0] for line in lines] == sorted(truth["name"])
    own_copy = dict(zip(truth["name"], truth["gallery_copy"]))
    for line in lines:
        query, _, matches = line.partition(": ")
        assert own_copy[query] not in matches.split(", ")
    sweep = pd.read_csv(tmp_path / "reid" / "threshold_sweep.csv")
    assert sweep["chosen"].sum() == 1
    assert (tmp_path / "reid" / "triplet_distances.png").is_file()


def test_strong_model_learns_identities_and_attributes(tmp_path, cache_dir):
    from tests.conftest import compose_config

    cfg = compose_config(
        "train",
        [
            "task=reid_strong",
            "data.num_workers=0",
            "data.source.num_train_ids=40",
            "data.source.num_test_ids=6",
            "data.val_ratio=0.3",
            "trainer.max_epochs=4",
            "trainer.enable_progress_bar=false",
            "~callbacks.progress_bar",
            "data.height=128",
            "data.width=64",
            "predict_test=false",
        ],
        tmp_path / "strong",
        cache_dir,
    )
    metrics = train(cfg)
    # 12 val identities: a random ranking gives rank-1 ~ 1/12 and mAP ~ 0.1
    assert metrics["val/mAP_best"] > 0.3 and metrics["val/rank1"] > 0.25, metrics
    assert metrics["val/mean_acc"] > 0.5, metrics
    history = pd.read_csv(tmp_path / "strong" / "metrics.csv")
    losses = history["train/loss"].dropna().to_numpy()
    assert losses[-1] < losses[0]
    clock = history["time/train_min"].dropna().to_numpy()
    assert len(clock) == 4 and (np.diff(clock) > 0).all() and clock[0] > 0
    assert (tmp_path / "strong" / "retrieval_vs_time.png").stat().st_size > 0

    # src.eval split=val recomputes the last validation from last.ckpt; split=train holds the other identities
    from src.evaluation import evaluate

    base = [
        "task=reid_strong",
        f"ckpt_path={tmp_path / 'strong' / 'checkpoints' / 'last.ckpt'}",
        "data.num_workers=0",
        "data.source.num_train_ids=40",
        "data.source.num_test_ids=6",
        "data.val_ratio=0.3",
        "data.height=128",
        "data.width=64",
    ]
    val = evaluate(compose_config("eval", [*base, "split=val"], tmp_path / "eval_val", cache_dir))
    last = history.dropna(subset=["val/mAP"]).iloc[-1]
    assert val["num_identities"] == 12 and val["split"] == "val"
    assert val["mAP"] == pytest.approx(last["val/mAP"], abs=1e-5) and val["rank1"] == pytest.approx(last["val/rank1"], abs=1e-6)
    assert val["mean_attribute_accuracy"] == pytest.approx(last["val/mean_acc"], abs=1e-6)
    assert evaluate(compose_config("eval", [*base, "split=train"], tmp_path / "eval_train", cache_dir))["num_identities"] == 28
    reranked = evaluate(compose_config("eval", [*base, "split=val", "postprocess.rerank.enabled=true"], tmp_path / "eval_rr", cache_dir))
    assert 0 < reranked["mAP"] <= 1 and reranked["mAP"] != val["mAP"]
    # attribute consensus over re-ID neighbours: in eval, and in predict for the unlabelled test folder
    smoothed = evaluate(compose_config("eval", [*base, "split=val", "attributes.consensus_k=3"], tmp_path / "eval_k", cache_dir))
    assert smoothed["attribute_options"]["consensus_k"] == 3 and 0.5 < smoothed["mean_attribute_accuracy"] <= 1
    reranked_k = evaluate(
        compose_config(
            "eval", [*base, "split=val", "attributes.consensus_k=3", "attributes.consensus_rerank=true"], tmp_path / "eval_k_rr", cache_dir
        )
    )
    assert reranked_k["attribute_options"]["consensus_rerank"] and 0.5 < reranked_k["mean_attribute_accuracy"] <= 1
    from src.data.records import image_records
    from src.deliverables import predict_attributes

    test_dir = Path(cfg.data.root) / "test"
    csv = predict_attributes(base[1].split("=", 1)[1], image_records(test_dir), tmp_path / "predicted", num_workers=0,
                             attributes={"consensus_k": 3})
    assert pd.read_csv(csv)["id"].tolist() == sorted(p.name for p in test_dir.iterdir())
    with pytest.raises(ValueError, match="split='test' is not one of"):
        evaluate(compose_config("eval", [*base, "split=test"], tmp_path / "eval_bad", cache_dir))


def test_eval_with_reranking_and_query_expansion(trained_attributes, tmp_path, cache_dir):
    from src.evaluation import evaluate
    from tests.conftest import compose_config

    cfg, _, out = trained_attributes
    stage1 = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    base = ["task=attributes", f"ckpt_path={stage1}", "data.num_workers=0", "data.source.num_train_ids=60", "data.source.num_test_ids=8"]
    plain = evaluate(compose_config("eval", base, tmp_path / "plain", cache_dir))
    assert "mAP" not in plain and 0 < plain["mean_attribute_accuracy"] <= 1
    assert json.loads((tmp_path / "plain" / "eval_metrics.json").read_text())["num_identities"] == 60
    # without test-time flips, split=val of the best checkpoint is the run's best validation accuracy
    val = evaluate(
        compose_config("eval", [*base, "split=val", "data.val_ratio=0.3", "attributes.flip_test=false"], tmp_path / "val", cache_dir)
    )
    assert val["mean_attribute_accuracy"] == pytest.approx(json.loads((out / "metrics.json").read_text())["val/mean_acc_best"], abs=1e-6)
    with pytest.raises(ValueError, match=r"\.ckpt: attributes\.consensus_k needs re-ID embeddings"):
        evaluate(compose_config("eval", [*base, "attributes.consensus_k=3"], tmp_path / "consensus", cache_dir))


def test_attribute_ensemble_averages_the_networks(trained_attributes, tmp_path, cache_dir):
    from src.data.records import image_records
    from src.deliverables import predict_attributes
    from src.evaluation import evaluate
    from src.models.loading import CheckpointError
    from tests.conftest import compose_config

    cfg, _, out = trained_attributes
    best = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    # a second, different network: the same run with its classifier weights perturbed
    import torch

    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for key, value in checkpoint["state_dict"].items():
        if key.startswith("net.heads.") and value.is_floating_point() and value.dim() == 2:
            value += 0.5 * value.std() * torch.randn(value.shape, generator=generator)
    last = str(tmp_path / "other.ckpt")
    torch.save(checkpoint, last)
    base = [
        "task=attributes",
        "data.num_workers=0",
        "data.source.num_train_ids=60",
        "data.source.num_test_ids=8",
        "split=val",
        "data.val_ratio=0.3",
    ]
    alone = evaluate(compose_config("eval", [*base, f"ckpt_path={last}"], tmp_path / "last", cache_dir))
    # the checkpoint's own heads left out: the ensemble of one member is that member
    only_member = evaluate(
        compose_config(
            "eval",
            [*base, f"ckpt_path={best}", f"attributes.ensemble=[{last}]", "attributes.ensemble_with_main=false"],
            tmp_path / "member",
            cache_dir,
        )
    )
    assert only_member["attribute_accuracy"] == alone["attribute_accuracy"]
    assert only_member["attribute_options"]["ensemble"] == [{"ckpt": last, "height": 128, "width": 64}]

    # predict: the ensemble's probabilities are the mean of the two networks'
    test_dir = Path(cfg.data.root) / "test"
    options = dict(height=128, width=64, num_workers=0)
    probabilities = [
        pd.read_csv(predict_attributes(ckpt, image_records(test_dir), tmp_path / name, **options).parent / "attribute_probabilities.csv")
        for ckpt, name in ((best, "best"), (last, "last"))
    ]
    both = pd.read_csv(
        predict_attributes(
            best, image_records(test_dir), tmp_path / "both", attributes={"ensemble": [{"ckpt": last, "height": 128, "width": 64}]},
            **options
        ).parent
        / "attribute_probabilities.csv"
    )
    columns = [c for c in both.columns if c != "name"]
    assert not np.allclose(probabilities[0][columns], probabilities[1][columns], atol=1e-3)
    np.testing.assert_allclose(both[columns], (probabilities[0][columns] + probabilities[1][columns]) / 2, atol=2e-4)

    with pytest.raises(ValueError, match=r"unknown keys \['size'\]"):
        predict_attributes(best, image_records(test_dir), tmp_path / "bad", attributes={"ensemble": [{"ckpt": last, "size": 3}]},
                           **options)
    with pytest.raises(CheckpointError, match="nowhere.ckpt: checkpoint not found"):
        predict_attributes(best, image_records(test_dir), tmp_path / "missing",
                           attributes={"ensemble": [str(tmp_path / "nowhere.ckpt")]}, **options)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "missing").exists()


def test_a_failed_run_releases_its_run_folder(make_cfg, tmp_path):
    """train() fails after it claimed the folder (ckpt_path=last with nothing to resume): the folder is free again."""
    from src import run_folder
    from src.errors import ConfigError
    from tests.conftest import SMALL_DATA

    with pytest.raises(ConfigError, match="no checkpoints/last.ckpt to resume"):
        train(make_cfg(["task=attributes", *SMALL_DATA, "ckpt_path=last"]))
    run_folder.claim(tmp_path / "run", None).close()  # not "another training (pid ...) is writing into this run folder"


def test_progress_bar_off_without_removing_its_callback(make_cfg):
    from tests.conftest import SMALL_DATA

    metrics = train(make_cfg(["task=attributes", "debug=fast", *SMALL_DATA, "trainer.enable_progress_bar=false"]))
    assert 0.0 <= metrics["val/mean_acc"] <= 1.0


def test_a_training_ends_with_its_run_folder_and_shows_no_model_summary(make_cfg, tmp_path, capfd, caplog):
    """The last line of ``python -m src.train`` says where the run went; Lightning's layer table stays out."""
    from src.train import main
    from tests.conftest import SMALL_DATA

    caplog.set_level("INFO")
    main(make_cfg(["task=attributes", "debug=fast", *SMALL_DATA]))
    out, err = capfd.readouterr()
    assert out.strip().splitlines()[-1] == f"run folder: {tmp_path / 'run'}", out
    shown = out + err + caplog.text  # Lightning logs the summary (rank_zero_info)
    assert "Total params" not in shown and "Trainable params" not in shown, shown
