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
    from src.eval import evaluate

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
