"""Decoding image files into uint8 CHW tensors, with errors that name the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from src.data.records import DataError, ImageRecord


def load_image(path: Path, max_side: int = 1024) -> torch.Tensor:
    """File -> uint8 tensor (3, H, W). Grayscale, palette, RGBA, CMYK and 16-bit images become RGB."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            if max(image.size) > max_side:
                image.thumbnail((max_side, max_side))
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                scale = 65535.0 if array.max() > 255 else 255.0
                image = Image.fromarray((array * (255.0 / scale)).round().clip(0, 255).astype(np.uint8))
            if image.mode == "RGBA" or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            rgb = np.array(image.convert("RGB"))
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def drop_unreadable(records: list[ImageRecord]) -> list[ImageRecord]:
    """Decode every image once; keep the readable ones and warn with the list of the others."""
    good, bad = [], []
    for record in records:
        try:
            load_image(record.path)
            good.append(record)
        except DataError as err:
            bad.append(str(err))
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable images: " + "; ".join(bad[:20]), stacklevel=2)
    return good
