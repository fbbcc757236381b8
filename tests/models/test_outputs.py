"""src/models/outputs.py: the one batch loop skips unreadable images (reported by dataset position) and feeds the
readable ones, in order, to the one step."""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.data import DataLoader

from src.data.datasets import ImageDataset
from src.data.records import ImageRecord
from src.models.outputs import map_batches, network_step


class MeanNet(torch.nn.Module):
    """Embedding: the per-channel means of the image; one head whose logits are those means."""

    def embed_and_classify(self, images):
        means = images.mean((2, 3))
        return means, {"head": means}

    def forward(self, images):
        return {"head": images.mean((2, 3))}


def test_unreadable_images_are_reported_and_the_rest_kept_in_order(tmp_path):
    paths = []
    for i, colour in enumerate([(255, 0, 0), None, (0, 255, 0), (0, 0, 255), None]):
        path = tmp_path / f"{i}.png"
        if colour is None:
            path.write_bytes(b"not an image")
        else:
            Image.new("RGB", (8, 16), colour).save(path)
        paths.append(path)
    dataset = ImageDataset([ImageRecord(p, -1, -1) for p in paths], 16, 8, skip_unreadable=True)
    net = MeanNet()
    out = map_batches(lambda images: network_step(net, images, embeds=True), DataLoader(dataset, batch_size=2), "test")
    assert out.ok == [0, 2, 3] and sorted(out.errors) == [1, 4]
    assert all(str(paths[i]) in out.errors[i] and "cannot decode image" in out.errors[i] for i in (1, 4))
    expected = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    torch.testing.assert_close(out.values["embedding"], expected)
    torch.testing.assert_close(out.values["head"], expected.softmax(-1))


def test_flip_test_averages_attribute_logits_but_never_the_embedding():
    class LeftRight(MeanNet):
        """Embedding and first logit: the brightness of the left column."""

        def embed_and_classify(self, images):
            left = images[..., 0].mean((1, 2))[:, None]
            return left, {"head": torch.cat([left, torch.zeros_like(left)], 1)}

        def forward(self, images):
            return self.embed_and_classify(images)[1]

    images = torch.zeros(1, 3, 4, 2)
    images[..., 0] = 1.0  # the left column is white: its mirror has it on the right
    plain = network_step(LeftRight(), images, embeds=True)
    flipped = network_step(LeftRight(), images, embeds=True, flip_test=True)
    torch.testing.assert_close(flipped["embedding"], plain["embedding"])
    torch.testing.assert_close(flipped["head"], torch.tensor([[0.5, 0.0]]).softmax(-1))
    assert not torch.allclose(plain["head"], flipped["head"])
