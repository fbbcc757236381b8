"""Checkpoints: missing, foreign or mismatched ones fail with a clear error; good ones round-trip safely."""

from __future__ import annotations

import pytest
import torch

from src.models.loading import CheckpointError, build_from_checkpoint, load_attribute_net

NET = {
    "_target_": "src.models.heads.MarketClassifier",
    "backbone": {"_target_": "src.models.backbones.timm_backbone", "model_name": "resnet18", "pretrained": False},
}


def save_attribute_checkpoint(path, net_config=NET, state_dict=None):
    from hydra.utils import instantiate

    net = instantiate(net_config)
    state = {f"net.{k}": v for k, v in (state_dict or net.state_dict()).items()}
    torch.save({"state_dict": state, "hyper_parameters": {"net": net_config}}, path)
    return net


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.ckpt: checkpoint not found"):
        load_attribute_net(tmp_path / "nothing.ckpt")


def test_a_checkpoint_path_that_is_not_a_file_says_what_it_is(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.ckpt")  # reading it would block forever
    with pytest.raises(CheckpointError, match="pipe.ckpt: a special file, not a checkpoint file"):
        load_attribute_net(tmp_path / "pipe.ckpt")
    with pytest.raises(CheckpointError, match=rf"{tmp_path}: a folder, not a checkpoint file \(pass the .ckpt"):
        load_attribute_net(tmp_path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a loadable checkpoint"):
        load_attribute_net(path)


def test_checkpoint_without_network_description(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="no 'net'"):
        load_attribute_net(path)


def test_weights_of_another_layout_are_refused(tmp_path):
    path = tmp_path / "mismatch.ckpt"
    other = dict(NET, backbone=dict(NET["backbone"], model_name="resnet34"))
    from hydra.utils import instantiate

    resnet34_weights = instantiate(other).state_dict()
    save_attribute_checkpoint(path, NET, resnet34_weights)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_attribute_net(path)


def test_round_trip_gives_identical_outputs(tmp_path):
    path = tmp_path / "good.ckpt"
    net = save_attribute_checkpoint(path).eval()
    loaded, _ = build_from_checkpoint(path, "net.")
    images = torch.rand(2, 3, 128, 64)
    with torch.no_grad():
        expected, actual = net(images), loaded(images)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name])


def test_pickled_objects_in_a_checkpoint_are_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": Payload()}}, path)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_attribute_net(path)
