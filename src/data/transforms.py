"""Image transforms (torchvision.transforms.v2) on uint8 CHW tensors -> float [0, 1]."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def build_transform(height: int, width: int, *, flip: float = 0.0, color_jitter: float = 0.0, rotation: float = 0.0,
                    shift: float = 0.0, pad_crop: int = 0, random_erasing: float = 0.0,
                    erasing_value: float = 0.0) -> v2.Compose:
    """Augmentations of an image already resized to (height, width); all zero = evaluation transform.

    ``erasing_value`` fills erased rectangles (in [0, 1], before the backbone's normalisation): 0 is black,
    0.5 the mean colour of EfficientNet-Lite's normalisation (what erasing after normalisation gives).
    """
    steps: list = []
    if pad_crop:
        steps += [v2.Pad(pad_crop, padding_mode="edge"), v2.RandomCrop((height, width))]
    if flip:
        steps.append(v2.RandomHorizontalFlip(flip))
    if rotation or shift:
        steps.append(v2.RandomAffine(degrees=rotation, translate=(shift, shift)))
    if color_jitter:
        # no hue jitter: it would turn a red shirt into a labelled-red green one
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if random_erasing:
        steps.append(v2.RandomErasing(random_erasing, value=erasing_value))
    return v2.Compose(steps)
