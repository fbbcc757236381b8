"""A checkpoint is data, never code: a crafted network config (a ``_target_`` that would write a marker file) is
refused in one line naming the file and the key by every consumer, and the marker never appears."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from src.data.records import file_digest
from src.models.loading import CheckpointError
from src.retrieval.store import MANIFEST
from tests.conftest import SMALL_DATA
from tests.retrieval.worlds import HEIGHT, WIDTH, build, gallery, world  # noqa: F401  (fixtures)

REFUSED = r"hyper_parameters\.net(\.[a-z_]+|\[\d\])*\._target_='builtins\.exec' is not a network of this project"
TINY_BACKBONE = {"_target_": "src.models.backbones.timm_backbone", "model_name": "test_resnet", "pretrained": False}


def payload(marker: Path) -> dict:
    return {"_target_": "builtins.exec", "_args_": [f"open({str(marker)!r}, 'w').write('code ran')"]}


def crafted_checkpoint(path: Path, marker: Path, where: str = "top") -> Path:
    """A checkpoint with a re-ID contract whose network config runs ``exec`` (at the top, in a backbone, or in a
    list argument of an allowed class), as a shared file could."""
    net = {"top": payload(marker),
           "nested": {"_target_": "src.models.strong.StrongReidNet", "num_identities": 2, "backbone": payload(marker)},
           "list": {"_target_": "src.models.strong.StrongReidNet", "backbone": TINY_BACKBONE,
                    "num_identities": 2, "colour_grid": [1, payload(marker)]}}[where]
    torch.save({"state_dict": {}, "hyper_parameters": {"net": net, "metric": "cosine"},
                "network": {"kind": "reid", "backbone": "test_resnet", "mean": [0.5] * 3, "std": [0.5] * 3,
                            "metric": "cosine"},
                "MarketDataModule": {"height": HEIGHT, "width": WIDTH}}, path)
    return path


@pytest.mark.parametrize("where", ["top", "nested", "list"])
def test_every_target_at_every_depth_is_checked(tmp_path, where):
    from src.models.loading import load_network

    marker = tmp_path / "marker"
    path = crafted_checkpoint(tmp_path / f"{where}.ckpt", marker, where)
    with pytest.raises(CheckpointError, match=rf"{where}\.ckpt: {REFUSED}") as refused:
        load_network(path)
    assert len(str(refused.value).splitlines()) == 1 and not marker.exists()


def test_other_hydra_directives_and_interpolations_are_refused(tmp_path):
    from src.models.loading import check_network_config

    net = {"_target_": "src.models.heads.MarketClassifier", "backbone": TINY_BACKBONE}
    check_network_config(net, "ok.ckpt")  # this project's networks pass
    for bad, key in ((dict(net, _partial_=True), r"net\._partial_"), (dict(net, hidden="${oc.env:HOME}"), r"net\.hidden"),
                     (dict(net, _target_=["builtins.exec"]), r"net\._target_")):
        with pytest.raises(CheckpointError, match=rf"x\.ckpt: hyper_parameters\.{key}"):
            check_network_config(bad, "x.ckpt")


def _eval(ckpt, tmp_path, cache_dir):
    from src.config import compose_config
    from src.evaluation import evaluate

    data = [o for o in SMALL_DATA if not o.startswith(("logger=", "model."))]
    evaluate(compose_config("eval", ["task=reid_strong", f"ckpt_path={ckpt}", *data], tmp_path / "eval", cache_dir))


def _predict(ckpt, tmp_path, cache_dir):
    from src.deliverables import predict_attributes

    predict_attributes(ckpt, [], tmp_path / "predict")


def _index(ckpt, tmp_path, cache_dir, world, gallery):  # noqa: F811
    build(world, gallery, tmp_path / "index", ckpt=ckpt)


def _export(ckpt, tmp_path, cache_dir):
    from src.models.onnx import export_onnx

    export_onnx(ckpt, tmp_path / "net.onnx")


def _release(ckpt, tmp_path, cache_dir):
    from src.config import compose_config
    from src.release import release

    release(compose_config("release", [f"ckpt_path={ckpt}", "name=crafted.pt", f"weights_dir={tmp_path / 'weights'}",
                                       "training_command=x", "training_commit=x", "evaluate.data=synthetic",
                                       "torch_threads=1"], tmp_path / "release", cache_dir))


def _train_resume(ckpt, tmp_path, cache_dir):
    from src.config import compose_config
    from src.train import train

    train(compose_config("train", ["task=reid_strong", *SMALL_DATA, "predict_test=false", f"ckpt_path={ckpt}"],
                         tmp_path / "run", cache_dir))


def _init_weights(ckpt, tmp_path, cache_dir):
    from src.models.strong_module import start_from

    start_from(torch.nn.Linear(2, 2), str(ckpt))


def _stage1(ckpt, tmp_path, cache_dir):
    from src.models.aggregator import AggregatorModule

    AggregatorModule(stage1_ckpt=str(ckpt), optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})


def indexed_with(ckpt: Path, world, gallery, folder: Path) -> Path:  # noqa: F811
    """An index folder whose manifest names ``ckpt`` with its SHA-256 (a shared index and checkpoint)."""
    build(world, gallery, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(checkpoint=str(ckpt), checkpoint_sha256=file_digest(ckpt))
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def _search(ckpt, tmp_path, cache_dir, world, gallery):  # noqa: F811
    from src.retrieval.search import search

    query = next((world["data"] / "train").iterdir())  # not in the gallery: its embedding is computed
    search(indexed_with(ckpt, world, gallery, tmp_path / "index"), query)


def _serve(ckpt, tmp_path, cache_dir, world, gallery):  # noqa: F811
    from src.serving.app import create_app

    create_app(indexed_with(ckpt, world, gallery, tmp_path / "index"))


CONSUMERS = {"eval": _eval, "predict": _predict, "export": _export, "release": _release, "train_resume": _train_resume,
             "init_weights": _init_weights, "stage1_ckpt": _stage1}
INDEX_CONSUMERS = {"index_build": _index, "search": _search, "serve": _serve}


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_every_consumer_refuses_a_crafted_checkpoint(consumer, tmp_path, cache_dir):
    marker = tmp_path / "marker"
    ckpt = crafted_checkpoint(tmp_path / "shared.ckpt", marker, "nested")
    with pytest.raises(CheckpointError, match=REFUSED):
        CONSUMERS[consumer](ckpt, tmp_path, cache_dir)
    assert not marker.exists()


@pytest.mark.parametrize("consumer", sorted(INDEX_CONSUMERS))
def test_index_consumers_refuse_a_crafted_checkpoint(consumer, tmp_path, cache_dir, world, gallery):  # noqa: F811
    marker = tmp_path / "marker"
    ckpt = crafted_checkpoint(tmp_path / "shared.ckpt", marker, "top")
    with pytest.raises(CheckpointError, match=REFUSED):
        INDEX_CONSUMERS[consumer](ckpt, tmp_path, cache_dir, world, gallery)
    assert not marker.exists()


def test_a_released_weights_file_is_checked_too(tmp_path):
    from src.models.loading import load_network

    marker = tmp_path / "marker"
    released = tmp_path / "weights" / "crafted.pt"
    released.parent.mkdir()
    shutil.copyfile(crafted_checkpoint(tmp_path / "x.ckpt", marker, "list"), released)
    (released.parent / "manifest.json").write_text(json.dumps({"files": {"crafted.pt": {"sha256": file_digest(released)}}}))
    with pytest.raises(CheckpointError, match=f"crafted.pt: {REFUSED}"):
        load_network(released)
    assert not marker.exists()
