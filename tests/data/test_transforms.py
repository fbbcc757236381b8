"""Training transforms: random erasing fills with the configured value (black or the mean colour)."""

import torch

from src.data.transforms import build_transform


def test_random_erasing_fills_with_the_configured_value():
    image = torch.full((3, 128, 64), 200, dtype=torch.uint8)
    torch.manual_seed(0)
    for value in (0.0, 0.5):
        out = build_transform(128, 64, random_erasing=1.0, erasing_value=value)(image)
        erased = (out - value).abs() < 1e-6
        assert 0 < erased.float().mean() < 0.5 and (((out - 200 / 255).abs() < 1e-6) | erased).all()
