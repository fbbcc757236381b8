"""src/models/heads.py: the report's attribute network, 12 heads over a feature, and the stage-2 descriptor
(feature ++ head outputs) with its inverse."""

from __future__ import annotations

import torch
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS, NUM_HEAD_OUTPUTS
from src.models.heads import LabelClassifier, MarketClassifier


class TinyBackbone(nn.Module):
    num_features = 16

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 4, self.num_features))

    def forward(self, images):
        return self.layers(images)


def network(feature_dim: int = 10) -> MarketClassifier:
    torch.manual_seed(0)
    return MarketClassifier(TinyBackbone(), feature_dim=feature_dim, hidden=6).eval()


def test_one_head_per_attribute_with_its_number_of_classes():
    logits = network()(torch.rand(5, 3, 8, 4))
    assert list(logits) == list(HEAD_NAMES)
    assert [logits[h.name].shape for h in HEADS] == [(5, h.num_classes) for h in HEADS]


def test_the_descriptor_is_the_feature_then_every_head_output_and_splits_back():
    net = network(feature_dim=10)
    images = torch.rand(3, 3, 8, 4)
    with torch.no_grad():
        descriptor = net.descriptor(images)
        features, logits = net.features(images), net(images)
    assert net.descriptor_dim == 10 + NUM_HEAD_OUTPUTS == descriptor.shape[1]
    torch.testing.assert_close(descriptor[:, :10], features)
    split = net.split_descriptor(descriptor)
    assert list(split) == list(HEAD_NAMES)
    for name in HEAD_NAMES:
        torch.testing.assert_close(split[name], logits[name])


def test_a_label_classifier_maps_features_to_class_scores_and_drops_out_in_training():
    torch.manual_seed(0)
    head = LabelClassifier(12, 4, hidden=8, dropout=0.5)
    features = torch.randn(6, 12)
    assert head.eval()(features).shape == (6, 4)
    assert torch.equal(head(features), head(features))  # eval: deterministic
    head.train()
    assert not torch.equal(head(features), head(features))  # training: dropout draws
