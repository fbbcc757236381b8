"""The report's attribute network: backbone -> 512-d feature -> 12 LabelClassifier heads."""

from __future__ import annotations

import torch
from torch import nn

from src.data.attributes import HEADS, NUM_HEAD_OUTPUTS


class LabelClassifier(nn.Module):
    """One attribute head: 512 -> 256, BatchNorm, ReLU, dropout -> classes."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class MarketClassifier(nn.Module):
    """Backbone -> Linear to ``feature_dim`` -> dict of logits, one entry per attribute head."""

    def __init__(self, backbone: nn.Module, feature_dim: int = 512, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.embed = nn.Linear(backbone.num_features, feature_dim)
        self.heads = nn.ModuleDict({h.name: LabelClassifier(feature_dim, h.num_classes, hidden, dropout) for h in HEADS})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.backbone(images))

    def classify(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(features) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.classify(self.features(images))

    def descriptor(self, images: torch.Tensor) -> torch.Tensor:
        """The report's stage-2 input: 512 features ++ 41 head outputs = 543 values per image."""
        features = self.features(images)
        logits = self.classify(features)
        return torch.cat([features, *logits.values()], dim=1)

    def split_descriptor(self, descriptors: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of the concatenation in ``descriptor``: the per-head logits."""
        sizes = [self.feature_dim] + [h.num_classes for h in HEADS]
        _, *logits = descriptors.split(sizes, dim=1)
        return dict(zip(self.heads.keys(), logits))

    @property
    def descriptor_dim(self) -> int:
        return self.feature_dim + NUM_HEAD_OUTPUTS
