"""Backbones: the offline weights are real ImageNet weights; missing weights fail loudly."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from src.models.backbones import BackboneWeightsError, efficientnet_lite, efficientnet_lite_classifier, torchvision_resnet


@pytest.mark.parametrize("variant, size", [("lite0", 224), ("lite1", 240), ("lite2", 260)])
def test_offline_weights_classify_chelsea_as_a_cat(variant, size):
    from skimage import data

    model = efficientnet_lite_classifier(variant, pretrained=True).eval()
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
    with torch.no_grad():
        top = model((image - mean) / std).argmax(1).item()
    assert 281 <= top <= 285, f"class {top} is not a cat class"


def test_random_init_is_not_the_pretrained_network():
    trained = efficientnet_lite("lite0", pretrained=True).state_dict()
    random = efficientnet_lite("lite0", pretrained=False).state_dict()
    assert not torch.equal(trained["body.conv_stem.weight"], random["body.conv_stem.weight"])


@pytest.mark.parametrize("stripes, grid, expected", [(1, None, 1280), (2, None, 2560), (2, (8, 4), 2560 + 96)])
def test_pooled_feature_width(stripes, grid, expected):
    backbone = efficientnet_lite("lite0", pretrained=False, stripes=stripes, colour_grid=grid).eval()
    assert backbone.num_features == expected
    with torch.no_grad():
        assert backbone(torch.rand(2, 3, 128, 64)).shape == (2, expected)


def test_resnet_weights_unreachable_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(BackboneWeightsError, match="resnet34.*pretrained=false"):
        torchvision_resnet(34, pretrained=True)


def test_resnet_without_pretrained_builds_offline():
    backbone = torchvision_resnet(34, pretrained=False).eval()
    with torch.no_grad():
        assert backbone(torch.rand(1, 3, 128, 64)).shape == (1, 512)
