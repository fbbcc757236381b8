"""A strong re-ID network (Bag of Tricks, Luo et al. 2019) that also predicts the 12 attributes.

backbone -> pooled feature f (triplet loss) -> BNNeck -> f_bn (identity classifier, attribute heads,
and the retrieval embedding).
"""

from __future__ import annotations

import torch
from torch import nn

from src.data.attributes import HEADS
from src.models.heads import LabelClassifier


class StrongReidNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_identities: int, attribute_hidden: int = 256,
                 attribute_dropout: float = 0.5, flip_test: bool = True):
        super().__init__()
        self.backbone = backbone
        dim = backbone.num_features
        self.feature_dim = dim
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)
        self.id_classifier = nn.Linear(dim, num_identities, bias=False)
        nn.init.normal_(self.id_classifier.weight, std=0.001)
        self.heads = nn.ModuleDict({h.name: LabelClassifier(dim, h.num_classes, attribute_hidden, attribute_dropout) for h in HEADS})
        self.flip_test = flip_test

    def forward_train(self, images: torch.Tensor) -> dict:
        feature = self.backbone(images.contiguous(memory_format=torch.channels_last))
        normed = self.bnneck(feature)
        return {"feature": feature, "normed": normed, "id_logits": self.id_classifier(normed),
                "attributes": {name: head(normed) for name, head in self.heads.items()}}

    def embed_and_classify(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Inference: BN-neck embedding (averaged with the flipped image when ``flip_test``) and attribute logits."""
        images = images.contiguous(memory_format=torch.channels_last)
        normed = self.bnneck(self.backbone(images))
        logits = {name: head(normed) for name, head in self.heads.items()}
        if self.flip_test:
            flipped = self.bnneck(self.backbone(images.flip(3)))
            normed = (normed + flipped) / 2
            logits = {name: (logits[name] + head(flipped)) / 2 for name, head in self.heads.items()}
        return normed, logits

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed_and_classify(images)[0]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.embed_and_classify(images)[1]
