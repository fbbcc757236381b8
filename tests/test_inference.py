"""src/inference.py: image records -> embeddings / attribute probabilities, the inference speed-ups (channels_last,
torch.compile when it pays), content hashes and the attribute ensemble's members."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from src.data.attributes import HEAD_NAMES, HEADS
from src.data.records import ImageRecord
from src.errors import ConfigError
from src.inference import (
    COMPILE_MIN_IMAGES,
    content_hashes,
    embed_files,
    embed_records,
    ensemble_members,
    ensemble_probabilities,
    fastest_inference,
)
from src.models.loading import CheckpointError, build_from_checkpoint
from tests.models.test_loading import save_attribute_checkpoint


class MeanColourNet(nn.Module):
    """Embedding: each image's mean colour; attribute logits: zeros (uniform probabilities)."""

    def embed(self, images):
        return images.mean(dim=(2, 3))

    def embed_and_classify(self, images):
        return self.embed(images), {h.name: torch.zeros(len(images), h.num_classes) for h in HEADS}

    def forward(self, images):
        return self.embed_and_classify(images)[1]


def images_in(folder, count: int) -> list:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 8, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def mean_colours(paths) -> torch.Tensor:
    return torch.tensor(np.stack([np.asarray(Image.open(p), dtype=np.float64).mean(axis=(0, 1)) / 255 for p in paths]),
                        dtype=torch.float32)


def test_embed_records_gives_one_row_per_record_in_order(tmp_path):
    paths = images_in(tmp_path, 5)
    embeddings = embed_records(MeanColourNet(), [ImageRecord(p, -1, -1) for p in paths], 16, 8, batch_size=2, num_workers=0)
    torch.testing.assert_close(embeddings, mean_colours(paths))


def test_embed_files_reports_an_unreadable_file_and_keeps_the_others(tmp_path):
    paths = images_in(tmp_path, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    outputs = embed_files(MeanColourNet(), [paths[0], broken, paths[1], paths[2]], 16, 8, batch_size=3)
    assert outputs.ok == [0, 2, 3] and list(outputs.errors) == [1] and "broken.jpg" in outputs.errors[1]
    torch.testing.assert_close(outputs.values["embedding"], mean_colours(paths))
    for head in HEADS:  # zero logits: uniform probabilities
        torch.testing.assert_close(outputs.values[head.name], torch.full((3, head.num_classes), 1 / head.num_classes))


def test_compiled_inference_matches_eager(tmp_path):
    ckpt = tmp_path / "attributes.ckpt"
    save_attribute_checkpoint(ckpt)
    eager, _ = build_from_checkpoint(ckpt, "net.")
    fast, _ = build_from_checkpoint(ckpt, "net.")
    fast = fastest_inference(fast, num_images=0, compile=True)
    images = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        expected, actual = eager.eval()(images), fast(images)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-3, rtol=1e-3)


def test_inference_is_eval_channels_last_and_compiles_only_when_it_pays(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: compiled.append(module) or module)
    from src.models.backbones import timm_backbone

    net = nn.Sequential(timm_backbone("test_resnet", pretrained=False)).train()  # the fake compile leaves it as it is
    small = fastest_inference(net, COMPILE_MIN_IMAGES - 1)
    assert not small.training and not compiled
    weights = next(p for p in small.parameters() if p.dim() == 4)
    assert weights.is_contiguous(memory_format=torch.channels_last)
    fastest_inference(net, COMPILE_MIN_IMAGES)
    assert len(compiled) == 1  # the backbone's body
    fastest_inference(net, 10**6, compile=False)
    fastest_inference(net, 1, compile=True)
    assert len(compiled) == 2


def test_content_hashes_are_the_sha256_of_the_bytes(tmp_path):
    paths = images_in(tmp_path, 2)
    copy = tmp_path / "copy.png"
    copy.write_bytes(paths[0].read_bytes())
    hashes = content_hashes([ImageRecord(p, -1, -1) for p in (paths[0], paths[1], copy)])
    assert hashes[0] == hashes[2] != hashes[1]
    assert hashes[1] == hashlib.sha256(paths[1].read_bytes()).hexdigest()


@pytest.mark.parametrize("spec, error, message", [
    ("missing.ckpt", CheckpointError, r"missing.ckpt: checkpoint not found \(attributes.ensemble\)"),
    ({"ckpt": "a.ckpt", "size": 3}, ConfigError, r"expected a path or \{ckpt: PATH, height: H, width: W\} \(unknown keys \['size'\]\)"),
    ({"height": 256}, ConfigError, r"attributes.ensemble entry \{'height': 256\}: .* \(no ckpt\)"),
])
def test_a_bad_ensemble_entry_is_refused_before_any_inference(spec, error, message):
    with pytest.raises(error, match=message):
        ensemble_members([spec])


def test_an_ensemble_of_one_network_is_that_network():
    main = {name: torch.rand(2, 3) for name in HEAD_NAMES}
    assert ensemble_members(None) == [] and ensemble_members(()) == []
    assert ensemble_probabilities([], [], main) is main
    with pytest.raises(ConfigError, match="attribute ensemble: no network"):
        ensemble_probabilities([], [], None)
