"""Releasing a network (src/release.py) on a tiny synthetic run, and the checks every load of a released file makes:
SHA-256 against the manifest, the format version, git-LFS pointers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.config import compose_config
from src.models.loading import CheckpointError, load_network, read_checkpoint
from src.release import release

SYNTHETIC = ["data.source.num_train_ids=24", "data.source.num_test_ids=6", "data.num_workers=0"]


@pytest.fixture(scope="module")
def released(tmp_path_factory, cache_dir, tiny_strong_ckpt) -> tuple[Path, Path, dict]:
    """(training checkpoint, released file, its manifest entry) of a 1-epoch strong model on synthetic data."""
    root = tmp_path_factory.mktemp("release")
    cfg = compose_config("release", [f"ckpt_path={tiny_strong_ckpt}", "name=tiny_strong.pt", "dtype=int8",
                                     f"weights_dir={root / 'weights'}",
                                     "training_command='python -m src.train task=reid_strong'", "training_commit=0000000",
                                     "evaluate.data=synthetic", "evaluate.overrides=[" + ",".join(f"'{o}'" for o in SYNTHETIC) + "]",
                                     "torch_threads=1"], root / "release_run", cache_dir)
    entry = release(cfg)
    return tiny_strong_ckpt, root / "weights" / "tiny_strong.pt", entry


def test_released_file_is_float16_with_the_full_contract_and_its_manifest_entry(released):
    ckpt, out, entry = released
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["files"]["tiny_strong.pt"] == json.loads(json.dumps(entry))
    assert "research use" in manifest["license_note"]
    weights = torch.load(out, weights_only=True)
    assert weights["format"]["version"] == 1 and "optimizer_states" not in weights
    stored = {v.dtype for k, v in weights["state_dict"].items() if k not in weights["quantized"]}
    assert stored == {torch.float16, torch.int64} and {v.dtype for v in weights["quantized"].values()} == {torch.float32}
    assert {weights["state_dict"][k].dtype for k in weights["quantized"]} == {torch.int8}
    assert out.stat().st_size < ckpt.stat().st_size / 5 and out.stat().st_size < 10 * 2**20
    _, contract = load_network(out)
    _, source_contract = load_network(ckpt)
    assert contract.as_dict() == source_contract.as_dict() and contract.height == 128
    assert entry["training"]["identities"]["split_seed"] == 0 and entry["training"]["commit"] == "0000000"
    assert 0 <= entry["val"]["mAP"] <= 1 and 0 <= entry["val"]["mAP_rerank"] <= 1
    assert 0 <= entry["val"]["attribute_mean_consensus"] <= 1
    # the balanced mean accuracy (mA) of the file's own evaluation, beside the plain mean
    for name, key in (("plain", "attribute_mA"), ("consensus", "attribute_mA_consensus")):
        metrics = json.loads((out.parents[1] / "release_run" / f"eval_{name}" / "eval_metrics.json").read_text())
        assert entry["val"][key] == round(metrics["mean_balanced_accuracy"], 6), key
    parity = entry["parity"]
    print(f"int8 + float16 vs float32: max abs embedding difference {parity['max_abs_output_difference']:.2e}, "
          f"mAP change {100 * parity['mAP_change']:+.3f} points")
    assert 0 < parity["max_abs_output_difference"] < 5e-2 and abs(parity["mAP_change"]) < 0.02


def test_the_release_summary_prints_the_parity(released):
    from src.release import summary

    _, _, entry = released
    text = summary(entry, "tiny_strong.pt")
    print(text)
    assert f"max abs embedding difference {entry['parity']['max_abs_output_difference']:.3g}" in text
    assert f"mAP {100 * entry['parity']['mAP_change']:+.2f} points" in text


def test_released_file_reproduces_its_manifest_metrics_through_src_eval(released, cache_dir, tmp_path):
    from src.evaluation import evaluate

    _, out, entry = released
    cfg = compose_config("eval", ["task=reid_strong", f"ckpt_path={out}", "data=synthetic", "split=val", *SYNTHETIC,
                                  "cache_dir=null"], tmp_path, cache_dir)
    result = evaluate(cfg)
    assert result["mAP"] == pytest.approx(entry["val"]["mAP"], abs=1e-6)
    assert result["mean_attribute_accuracy"] == pytest.approx(entry["val"]["attribute_mean"], abs=1e-6)


def test_a_damaged_released_file_fails_its_manifest_sha256(released, tmp_path):
    _, out, _ = released
    copy = tmp_path / out.name
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    (tmp_path / "manifest.json").write_text((out.parent / "manifest.json").read_text())
    with pytest.raises(CheckpointError, match=r"SHA-256 .* differs from .*manifest.json"):
        read_checkpoint(copy)


def test_a_git_lfs_pointer_says_so(tmp_path):
    pointer = tmp_path / "strong.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 7340032\n")
    with pytest.raises(CheckpointError, match="git-LFS pointer file, not the weights"):
        read_checkpoint(pointer)


def test_a_newer_format_version_is_refused(released, tmp_path):
    _, out, _ = released
    weights = torch.load(out, weights_only=True)
    weights["format"]["version"] = 2
    torch.save(weights, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="format version 2, newer than this code reads"):
        read_checkpoint(tmp_path / "newer.pt")


CALIBRATION = {"method": "isotonic", "distance": [0.1, 0.3, 0.6], "p_same": [0.95, 0.5, 0.01],
               "operating_points": {"far_0.01": {"far": 0.01, "tar": 0.7, "threshold": 0.35},
                                    "far_0.001": {"far": 0.001, "tar": 0.4, "threshold": 0.2}}}


@pytest.fixture
def calibrated(released, tmp_path) -> Path:
    """A copy of the released file carrying a calibration (the tiny world has too few held-out identities to fit one
    on one half and measure it on the other: its release records why it has none)."""
    from src.release import add_calibration

    _, path, entry = released
    assert "skipped" in json.loads((path.parent.parent / "release_run" / "eval_plain" / "eval_metrics.json").read_text()
                                   )["verification"] and entry["verification"] == {}
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    add_calibration(copy, {"plain": CALIBRATION, "rerank": CALIBRATION})
    return copy


def test_a_calibration_travels_in_the_released_file_and_is_checked_as_data(calibrated, tmp_path):
    from src.models.loading import read_calibration
    from src.release import add_calibration

    assert read_calibration(calibrated, "plain") == CALIBRATION
    add_calibration(calibrated, {"plain": {**CALIBRATION, "p_same": [0.1, 0.5, 0.9]}})
    with pytest.raises(CheckpointError, match=f"{calibrated}: calibration: probabilities must .* never rise"):
        read_calibration(calibrated, "plain")
    assert read_calibration(calibrated, "rerank") is None


def test_releasing_again_under_the_same_name_replaces_file_and_entry(released, tmp_path, cache_dir):
    """The manifest's entry of the old file must not refuse the new file while it is measured."""
    source, path, entry = released
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / path.name).write_bytes(path.read_bytes())
    (weights / "manifest.json").write_text(json.dumps({"files": {path.name: entry}}))
    cfg = compose_config("release", [f"ckpt_path={source}", f"name={path.name}", "dtype=int8", f"weights_dir={weights}",
                                     "training_command='python -m src.train task=reid_strong'", "training_commit=0000001",
                                     "evaluate.data=synthetic", "evaluate.overrides=[" + ",".join(f"'{o}'" for o in SYNTHETIC) + "]",
                                     "torch_threads=1"], tmp_path / "run", cache_dir)
    again = release(cfg)
    manifest = json.loads((weights / "manifest.json").read_text())["files"][path.name]
    assert again["sha256"] == manifest["sha256"] and manifest["training"]["commit"] == "0000001"
    read_checkpoint(weights / path.name)  # its SHA-256 is the manifest's


def test_compare_answers_with_the_calibrated_probability_and_decision(calibrated, tmp_path):
    import subprocess
    import sys

    from src.models.loading import read_calibration
    from src.retrieval.verify import compare_images, decide
    from tests.conftest import ROOT, SAMPLES

    path = calibrated
    images = sorted(SAMPLES.glob("*.jpg"))[:2] if SAMPLES.is_dir() else []
    if len(images) < 2:
        pytest.skip("needs ../shared/data/market1501-samples (the shared data)")
    result = compare_images(path, images[0], images[1], far=0.01)
    assert 0 <= result["p_same"] <= 1 and result["same"] == (result["distance"] <= result["threshold"])
    calibration = read_calibration(path)
    probabilities = [decide(d, calibration, 0.01)["p_same"] for d in (0.0, 0.5, 1.0, 2.0)]
    assert probabilities == sorted(probabilities, reverse=True)
    with pytest.raises(Exception, match="far=0.05: no operating point"):
        decide(0.1, calibration, 0.05)
    cli = subprocess.run([sys.executable, "-m", "src.compare", str(images[0]), str(images[1]), f"ckpt_path={path}",
                          "torch_threads=1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert f"{images[0].name} vs {images[1].name}: cosine distance {result['distance']:.4f}" in cli.stdout
    assert "P(same identity)" in cli.stdout and "at a false accept rate of 1%" in cli.stdout
    one = subprocess.run([sys.executable, "-m", "src.compare", str(images[0]), f"ckpt_path={path}"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert one.returncode == 2 and "give two images to compare (got 1)" in one.stderr
    missing = subprocess.run([sys.executable, "-m", "src.compare", str(images[0]), str(tmp_path / "nope.jpg"),
                              f"ckpt_path={path}"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert missing.returncode == 2 and "nope.jpg: image not found" in missing.stderr


@pytest.mark.parametrize("name", ["../escaped.pt", "{abs}/escaped.pt", "sub/escaped.pt", ".hidden.pt"])
def test_a_release_name_with_a_folder_part_is_refused(tmp_path, cache_dir, name):
    from src.errors import ConfigError

    name = name.format(abs=tmp_path)
    weights = tmp_path / "weights" / "inner"
    cfg = compose_config("release", [f"ckpt_path={tmp_path / 'any.ckpt'}", f"name='{name}'", f"weights_dir={weights}",
                                     "training_command=x", "training_commit=x", "torch_threads=1"], tmp_path / "run", cache_dir)
    with pytest.raises(ConfigError, match=r"name='.*escaped.pt'|name='.hidden.pt'"):
        release(cfg)
    assert not list(tmp_path.rglob("*.pt"))


def test_eval_rankings_carry_the_released_probability(calibrated, tmp_path, cache_dir):
    import pandas as pd

    from src.evaluation import evaluate
    from src.metrics.verification import p_same

    cfg = compose_config("eval", ["task=reid_strong", f"ckpt_path={calibrated}", "data=synthetic", *SYNTHETIC, "split=val",
                                  "torch_threads=1"], tmp_path / "eval", cache_dir)
    evaluate(cfg)
    table = pd.read_csv(tmp_path / "eval" / "rankings.csv")
    assert list(table.columns[:5]) == ["query", "rank", "gallery", "distance", "p_same"] and len(table)
    assert table["p_same"].tolist() == pytest.approx(list(p_same(CALIBRATION, table["distance"])))


def test_a_file_saved_twice_has_the_same_bytes(tmp_path):
    """The zip inside a released file names no temporary file: re-releasing a network gives the same SHA-256."""
    from src.data.records import file_digest
    from src.release import save_reproducibly

    content = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "format": {"version": 1}}
    save_reproducibly(content, tmp_path / "a.pt")
    save_reproducibly(content, tmp_path / "other_name.pt")
    assert file_digest(tmp_path / "a.pt") == file_digest(tmp_path / "other_name.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]["w"], content["state_dict"]["w"])
