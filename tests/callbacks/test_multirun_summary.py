import json

from src.callbacks.multirun_summary import summarise_sweep


def job(folder, overrides, file_name, content):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / file_name).write_text(json.dumps(content))


def test_training_sweep_reports_the_optimized_metric(tmp_path):
    job(tmp_path / "0", ["model.optimizer.lr=0.01"], "metrics.json", {"val/mean_acc_best": 0.7, "val/loss": 1.0})
    job(tmp_path / "1", ["model.optimizer.lr=0.001"], "metrics.json", {"val/mean_acc_best": 0.8})
    (tmp_path / "multirun.yaml").write_text("")  # not a job folder
    table = summarise_sweep(tmp_path, "val/mean_acc_best")
    assert table["model.optimizer.lr"].tolist() == ["0.01", "0.001"]
    assert table["val/mean_acc_best"].tolist() == [0.7, 0.8]


def test_eval_sweep_reports_retrieval_and_attribute_numbers(tmp_path):
    for index, k in enumerate((0, 10)):
        job(tmp_path / str(index), [f"attributes.consensus_k={k}"], "eval_metrics.json",
            {"mAP": 0.6, "rank1": 0.78, "mINP": 0.35, "mean_attribute_accuracy": 0.84 + k / 1000, "cmc": [0.78, 0.85]})
    table = summarise_sweep(tmp_path, "val/mAP_best")
    assert list(table.columns) == ["job", "attributes.consensus_k", "mAP", "rank1", "mINP", "mean_attribute_accuracy"]
    assert table["mean_attribute_accuracy"].tolist() == [0.84, 0.85]
