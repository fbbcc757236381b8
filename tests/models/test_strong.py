"""src/models/strong.py: the strong re-ID network, BN-neck embedding with flip test averaging, attribute heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS
from src.models.strong import StrongReidNet


class TinyBackbone(nn.Module):
    """A linear map of the pixels: a mirrored image gives another feature."""

    num_features = 12

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 4, self.num_features)

    def forward(self, images):
        return self.linear(images.flatten(1))


def network(flip_test: bool = True) -> StrongReidNet:
    torch.manual_seed(0)
    net = StrongReidNet(TinyBackbone(), num_identities=5, attribute_hidden=6, flip_test=flip_test).eval()
    net.bnneck.running_mean.uniform_(-1, 1)  # statistics that make the BN neck matter
    net.bnneck.running_var.uniform_(0.5, 2)
    return net


def test_training_outputs_the_feature_before_and_after_the_bn_neck():
    net = network()
    images = torch.rand(4, 3, 8, 4)
    out = net.forward_train(images)
    feature = net.backbone(images)
    torch.testing.assert_close(out["feature"], feature)
    torch.testing.assert_close(out["normed"], net.bnneck(feature))
    torch.testing.assert_close(out["id_logits"], out["normed"] @ net.id_classifier.weight.T)
    assert [out["attributes"][h.name].shape for h in HEADS] == [(4, h.num_classes) for h in HEADS]


@pytest.mark.parametrize("flip_test", [True, False])
def test_inference_averages_the_image_and_its_mirror_when_flip_test(flip_test):
    net = network(flip_test)
    images = torch.rand(3, 3, 8, 4)
    with torch.no_grad():
        embedding, logits = net.embed_and_classify(images)
        normed, mirrored = net.bnneck(net.backbone(images)), net.bnneck(net.backbone(images.flip(3)))
        expected = (normed + mirrored) / 2 if flip_test else normed
        torch.testing.assert_close(embedding, expected)
        for name in HEAD_NAMES:
            head = net.heads[name]
            torch.testing.assert_close(logits[name], (head(normed) + head(mirrored)) / 2 if flip_test else head(normed))
        assert not torch.allclose(normed, mirrored)  # the mirror is a different input
        torch.testing.assert_close(net.embed(images), embedding)
        assert list(net(images)) == list(HEAD_NAMES)


def test_the_bn_neck_shift_is_fixed_and_the_identity_classifier_starts_small_without_bias():
    net = network()
    assert not net.bnneck.bias.requires_grad and net.bnneck.weight.requires_grad
    assert net.id_classifier.bias is None and net.id_classifier.weight.shape == (5, 12)
    assert net.id_classifier.weight.std() < 0.01
