"""Synthetic Market-1501-like pedestrians in the course layout, for tests and quick runs without real data.

``generate_synthetic_dataset(root)`` renders 64x128 RGB JPEG crops of simple pedestrians whose look
follows the 12 attribute heads (see ``attributes.py``) and writes them in the layout of the course data
(``/work/shared/data/README.md``)::

    root/
      train/<pid:04d>_c<cam>_<9 digits>.jpg     labelled identities (>= 2 images, >= 2 cameras each)
      annotations_train.csv                      one row per train identity, columns CSV_COLUMNS
      test/000000.jpg ...                        gallery of the (disjoint) test identities, shuffled
      queries/000000.jpg ...                     one image per (test identity, camera): byte-identical
                                                 copies of gallery images, as in the course data
      test_ground_truth.csv                      name,pid,camid,<attributes>  (evaluation only)
      queries_ground_truth.csv                   name,pid,camid,<attributes>,gallery_copy
      synthetic.json                             generation parameters, version, file counts

Everything is deterministic from ``seed`` (same parameters -> byte-identical files). The dataset is
generated in a temporary sibling folder and renamed into place, and an existing complete dataset with the
same parameters is reused (a cache).

Attribute coding is the course coding: 1 = no / 2 = yes, ``age`` 1..4 (young, teenager, adult, old),
``up`` 2 = short sleeves, ``down`` 2 = short lower-body clothing (shorts / short skirt), ``clothes``
1 = dress or skirt / 2 = trousers, ``hair`` 2 = long, ``gender`` 1 = male / 2 = female, one-hot colours with
"multicolour" = no colour column set.

Visual cues (each learnable by a small CNN): upper colour = torso and sleeves (multicolour: stripes,
halves or a print of 2-3 colours); lower colour = trousers / skirt (multicolour likewise); sleeve length =
skin on the arms; lower length = skin on the lower legs; dress = a flared skirt without a gap between the
legs; hat = a cap with a brim; backpack = a block on the back (straps in front views); bag = a strap across
the chest and a bag at the hip; handbag = a small bag hanging from a hand; hair = strands over the
shoulders / down the back; gender = shoulder and waist width (and correlated hair, dress, handbag); age =
grey hair (old), a big head on a short body (young), a broader build (adult).

Nuisances: six cameras with their own background (ground, wall / greenery / shop fronts, parked bikes,
poles), lighting gain and tint, sharpness and noise; per image: front / back / side view, horizontal flip,
walking pose, position and scale jitter, occasional bikes in front and bystanders at the edges, colour
jitter, JPEG compression.

CLI: ``python -m src.data.synthetic ROOT [--num-train-ids N] [--num-test-ids N] [--seed S] ...``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from src.data.attributes import BINARY_COLUMNS, CSV_COLUMNS, LOWER_COLOURS, UPPER_COLOURS

__all__ = [
    "SYNTHETIC_VERSION",
    "WIDTH",
    "HEIGHT",
    "Identity",
    "Camera",
    "sample_identity",
    "make_camera",
    "render_image",
    "generate_synthetic_dataset",
    "load_synthetic_metadata",
    "main",
]

SYNTHETIC_VERSION = 1
WIDTH, HEIGHT = 64, 128
_SS = 2  # drawing is supersampled by this factor, then reduced (anti-aliasing)
_CW, _CH = WIDTH * _SS, HEIGHT * _SS  # drawing canvas
_BG_MARGIN = 32 * _SS  # camera backgrounds are this much larger than the canvas (random crops)
_MAX_PID = 1500  # pids are drawn from 1.._MAX_PID like the course data (ids 2..1501)
META_NAME = "synthetic.json"

RGB = tuple[int, int, int]

# ----------------------------------------------------------------------------------------------- priors
# Course data (600 train ids): age 5/475/113/7, backpack 24%, bag 28%, handbag 12%, dress 14%, short lower
# 60%, short sleeves 94%, long hair 35%, hat 3%, female 45%, upper multicolour 9.5%, lower multicolour 5.7%.
# Rare classes are made somewhat less rare so that short runs see enough of them.
AGE_PRIOR = (0.05, 0.64, 0.23, 0.08)
FEMALE_P = 0.45
LONG_HAIR_P = {1: 0.04, 2: 0.75}  # by gender
DRESS_P = {1: 0.0, 2: 0.32}  # by gender (no man wears a dress in the course data)
SHORT_LOWER_P = {1: 0.80, 2: 0.55}  # by clothes (1 dress, 2 trousers)
SHORT_SLEEVE_P = 0.84
HAT_P = 0.07
BACKPACK_P = 0.25
BAG_P = 0.27
HANDBAG_P = {1: 0.08, 2: 0.24}  # by gender
UPPER_MULTI_P = 0.10
LOWER_MULTI_P = 0.07
_UPPER_COUNTS = (89, 180, 58, 20, 44, 71, 47, 34)  # course counts, UPPER_COLOURS order
_LOWER_COUNTS = (230, 42, 25, 1, 7, 90, 110, 16, 45)  # LOWER_COLOURS order
UPPER_PRIOR = tuple(np.add(_UPPER_COUNTS, 25) / np.add(_UPPER_COUNTS, 25).sum())
LOWER_PRIOR = tuple(np.add(_LOWER_COUNTS, 20) / np.add(_LOWER_COUNTS, 20).sum())

# ---------------------------------------------------------------------------------------------- palettes
_COLOUR_VARIANTS: dict[str, tuple[RGB, ...]] = {
    "black": ((28, 28, 32), (40, 38, 40), (22, 24, 34)),
    "white": ((232, 232, 228), (220, 223, 226), (240, 236, 224)),
    "red": ((196, 36, 44), (170, 28, 38), (218, 62, 58)),
    "purple": ((112, 58, 140), (136, 78, 162), (88, 44, 112)),
    "yellow": ((230, 205, 55), (242, 222, 96), (214, 184, 40)),
    "gray": ((128, 128, 130), (152, 152, 150), (104, 107, 110)),
    "blue": ((46, 86, 176), (72, 112, 190), (36, 60, 140)),
    "green": ((50, 136, 70), (84, 160, 82), (34, 104, 60)),
    "pink": ((228, 142, 172), (240, 172, 192), (206, 112, 150)),
    "brown": ((116, 78, 48), (140, 100, 62), (96, 66, 46)),
}
_LOWER_BLUE = ((52, 78, 128), (70, 100, 160), (40, 58, 108), (46, 86, 176))  # jeans and navy
_UPPER_NAMES = tuple(c[2:] for c in UPPER_COLOURS)
_LOWER_NAMES = tuple(c[4:] for c in LOWER_COLOURS)
_SKIN = ((226, 190, 162), (212, 172, 142), (192, 152, 122), (164, 124, 98), (236, 202, 178))
_DARK_HAIR = ((24, 20, 20), (42, 34, 30), (60, 46, 36), (30, 28, 32))
_DYED_HAIR = ((98, 68, 48), (120, 84, 56))
_GREY_HAIR = ((168, 166, 164), (196, 194, 190), (140, 138, 138), (214, 212, 208))
_SHOES = ((25, 25, 28), (228, 228, 228), (96, 66, 44), (110, 110, 115))
_BAG = ((26, 26, 30), (60, 40, 30), (36, 44, 80), (160, 36, 44), (220, 140, 170), (220, 216, 208), (120, 120, 124))
_BAG_P = (0.34, 0.14, 0.12, 0.1, 0.1, 0.1, 0.1)
_BACKPACK = ((26, 26, 30), (30, 40, 90), (150, 32, 36), (96, 98, 104), (40, 90, 50), (80, 48, 100), (60, 40, 30))
_BACKPACK_P = (0.38, 0.18, 0.12, 0.12, 0.08, 0.06, 0.06)
_HAT = ((236, 236, 232), (28, 28, 32), (190, 40, 44), (44, 80, 170), (204, 184, 142), (232, 150, 176), (230, 206, 70))
_HAT_P = (0.3, 0.12, 0.14, 0.14, 0.14, 0.08, 0.08)


def _clip_rgb(values) -> RGB:
    r, g, b = np.clip(np.round(values), 0, 255).astype(int)
    return int(r), int(g), int(b)


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _jitter(rng: np.random.Generator, rgb, gain=(0.9, 1.08), sigma=6.0) -> RGB:
    return _clip_rgb(np.asarray(rgb, float) * rng.uniform(*gain) + rng.normal(0.0, sigma, 3))


def _named_colour(rng: np.random.Generator, name: str, lower: bool) -> RGB:
    variants = _LOWER_BLUE if (lower and name == "blue") else _COLOUR_VARIANTS[name]
    rgb = _jitter(rng, _pick(rng, variants))
    if name == "black":  # keep black dark
        rgb = _clip_rgb(np.minimum(rgb, 58))
    return rgb


def _scale_rgb(rgb, factor: float) -> RGB:
    return _clip_rgb(np.asarray(rgb, float) * factor)


# ---------------------------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class Identity:
    """One synthetic person: course-coded attributes plus the constants of their look."""

    pid: int
    attrs: dict  # "age" -> 1..4 and BINARY_COLUMNS -> 1/2 (course coding)
    upcolor: int  # index into UPPER_COLOURS, len(UPPER_COLOURS) = multicolour
    downcolor: int  # index into LOWER_COLOURS, len(LOWER_COLOURS) = multicolour
    skin: RGB
    hair_rgb: RGB
    upper_rgbs: tuple  # 1 colour, or 2-3 for multicolour
    upper_pattern: str  # "plain", "stripes", "halves", "print"
    lower_rgbs: tuple
    lower_pattern: str  # "plain", "stripes", "vstripes", "print"
    shoe_rgb: RGB
    hat_rgb: RGB
    backpack_rgb: RGB
    bag_rgb: RGB
    handbag_rgb: RGB
    build: float  # relative width
    height: float  # relative height
    bag_side: int  # +1 / -1: side of the body the shoulder bag hangs on
    hand_side: int  # hand holding the handbag
    extras: dict = field(default_factory=dict)

    def row(self) -> dict:
        """This identity's values for the columns of CSV_COLUMNS (course coding)."""
        out = {"id": int(self.pid), "age": int(self.attrs["age"])}
        for name in BINARY_COLUMNS:
            out[name] = int(self.attrs[name])
        for j, c in enumerate(UPPER_COLOURS):
            out[c] = 2 if self.upcolor == j else 1
        for j, c in enumerate(LOWER_COLOURS):
            out[c] = 2 if self.downcolor == j else 1
        return out

    @property
    def is_female(self) -> bool:
        return self.attrs["gender"] == 2


def _yes(rng: np.random.Generator, p: float) -> int:
    return 2 if rng.random() < p else 1


def sample_identity(pid: int, rng: np.random.Generator, **overrides) -> Identity:
    """Draw an identity from the priors. ``overrides`` fix attributes in course coding, e.g.
    ``gender=2, clothes=1`` or ``upcolor=2`` (an index into UPPER_COLOURS, len(...) = multicolour);
    correlated attributes are drawn conditionally on the fixed ones."""
    unknown = set(overrides) - {"age", *BINARY_COLUMNS, "upcolor", "downcolor"}
    if unknown:
        raise ValueError(f"unknown attribute overrides: {sorted(unknown)}")
    a: dict[str, int] = {}

    def draw(name, fn):
        a[name] = int(overrides[name]) if name in overrides else int(fn())

    draw("age", lambda: 1 + rng.choice(4, p=AGE_PRIOR))
    draw("gender", lambda: _yes(rng, FEMALE_P))
    draw("hair", lambda: _yes(rng, LONG_HAIR_P[a["gender"]]))
    draw("clothes", lambda: 1 if rng.random() < DRESS_P[a["gender"]] else 2)
    draw("down", lambda: _yes(rng, SHORT_LOWER_P[a["clothes"]]))
    draw("up", lambda: _yes(rng, SHORT_SLEEVE_P))
    draw("hat", lambda: _yes(rng, HAT_P))
    draw("backpack", lambda: _yes(rng, BACKPACK_P))
    draw("bag", lambda: _yes(rng, BAG_P))
    draw("handbag", lambda: _yes(rng, HANDBAG_P[a["gender"]]))
    for name, lo, hi in (("age", 1, 4), *((n, 1, 2) for n in BINARY_COLUMNS)):
        if not lo <= a[name] <= hi:
            raise ValueError(f"{name}={a[name]} out of range {lo}..{hi}")

    n_up, n_low = len(UPPER_COLOURS), len(LOWER_COLOURS)
    if "upcolor" in overrides:
        up = int(overrides["upcolor"])
    else:
        up = n_up if rng.random() < UPPER_MULTI_P else int(rng.choice(n_up, p=UPPER_PRIOR))
    if "downcolor" in overrides:
        down = int(overrides["downcolor"])
    else:
        down = n_low if rng.random() < LOWER_MULTI_P else int(rng.choice(n_low, p=LOWER_PRIOR))
    if not (0 <= up <= n_up and 0 <= down <= n_low):
        raise ValueError(f"colour class out of range: upcolor={up}, downcolor={down}")

    def colours(cls, names, prior, lower):
        if cls < len(names):
            return (_named_colour(rng, names[cls], lower),), "plain"
        k = 2 if rng.random() < 0.7 else 3
        idx = rng.choice(len(names), size=k, replace=False, p=prior)
        pattern = _pick(rng, ("stripes", "vstripes", "print") if lower else ("stripes", "halves", "print"))
        return tuple(_named_colour(rng, names[i], lower) for i in idx), pattern

    upper_rgbs, upper_pattern = colours(up, _UPPER_NAMES, UPPER_PRIOR, False)
    lower_rgbs, lower_pattern = colours(down, _LOWER_NAMES, LOWER_PRIOR, True)

    age, female = a["age"], a["gender"] == 2
    if age == 4 and rng.random() < 0.85:
        hair = _jitter(rng, _pick(rng, _GREY_HAIR), sigma=4)
    elif female and rng.random() < 0.15:
        hair = _jitter(rng, _pick(rng, _DYED_HAIR))
    else:
        hair = _jitter(rng, _pick(rng, _DARK_HAIR), sigma=3)
    build = rng.uniform(0.92, 1.08) + (0.07 if age == 3 else 0.0) + (0.05 if age == 4 else 0.0)
    height = {1: rng.uniform(0.80, 0.88), 2: rng.uniform(0.95, 1.0), 3: rng.uniform(0.94, 1.0), 4: rng.uniform(0.9, 0.96)}[age]
    return Identity(
        pid=int(pid),
        attrs=a,
        upcolor=up,
        downcolor=down,
        skin=_jitter(rng, _pick(rng, _SKIN), gain=(0.95, 1.04), sigma=3),
        hair_rgb=hair,
        upper_rgbs=upper_rgbs,
        upper_pattern=upper_pattern,
        lower_rgbs=lower_rgbs,
        lower_pattern=lower_pattern,
        shoe_rgb=_jitter(rng, _pick(rng, _SHOES)),
        hat_rgb=_jitter(rng, _pick(rng, _HAT, _HAT_P)),
        backpack_rgb=_jitter(rng, _pick(rng, _BACKPACK, _BACKPACK_P)),
        bag_rgb=_jitter(rng, _pick(rng, _BAG, _BAG_P)),
        handbag_rgb=_jitter(rng, _pick(rng, _BAG, _BAG_P)),
        build=float(build),
        height=float(height),
        bag_side=1 if rng.random() < 0.5 else -1,
        hand_side=1 if rng.random() < 0.5 else -1,
        extras={"pattern_seed": int(rng.integers(2**31))},
    )


# ------------------------------------------------------------------------------------------------ camera
@dataclass(frozen=True)
class Camera:
    camid: int
    background: np.ndarray  # (_CH + margin, _CW + margin, 3) uint8, drawn at supersampled scale
    gain: float
    tint: tuple  # per-channel multipliers
    noise: float  # Gaussian noise sigma (grey levels)
    sharpness: tuple  # (lo, hi) fraction of full resolution the image is blurred down to


def _low_freq_noise(rng: np.random.Generator, h: int, w: int, cells=(6, 10), amp=14.0) -> np.ndarray:
    small = rng.normal(0.0, 1.0, (cells[1], cells[0])).astype(np.float32)
    img = Image.fromarray(((small - small.min()) / (np.ptp(small) + 1e-6) * 255).astype(np.uint8), "L")
    big = np.asarray(img.resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255.0 - 0.5
    return big * 2 * amp


def make_camera(camid: int, rng: np.random.Generator) -> Camera:
    """One camera: a background plate (wall / greenery / shop fronts over a paved ground) and lighting."""
    bw, bh = _CW + _BG_MARGIN, _CH + _BG_MARGIN
    horizon = int(bh * rng.uniform(0.18, 0.5))
    ground = _pick(rng, ((138, 136, 132), (118, 116, 114), (150, 120, 108), (96, 96, 98), (160, 156, 146)))
    ground = _jitter(rng, ground, gain=(0.9, 1.1), sigma=5)
    scene = _pick(rng, ("greenery", "wall", "shop"))
    img = Image.new("RGB", (bw, bh), ground)
    d = ImageDraw.Draw(img)
    if scene == "greenery":
        top = _jitter(rng, (64, 98, 62), sigma=8)
        d.rectangle((0, 0, bw, horizon), fill=top)
        for _ in range(40):
            x, y, r = rng.uniform(0, bw), rng.uniform(-10, horizon), rng.uniform(6, 22)
            d.ellipse((x - r, y - r, x + r, y + r * 0.8), fill=_jitter(rng, top, gain=(0.6, 1.4), sigma=10))
    elif scene == "wall":
        top = _jitter(rng, _pick(rng, ((176, 170, 156), (150, 150, 154), (190, 184, 170))), sigma=6)
        d.rectangle((0, 0, bw, horizon), fill=top)
        win = _scale_rgb(top, rng.uniform(0.45, 0.7))
        ww, wh, gap = rng.uniform(16, 30), rng.uniform(20, 40), rng.uniform(10, 20)
        x = rng.uniform(-ww, 0)
        while x < bw:
            y = rng.uniform(4, 14)
            while y + wh < horizon - 4:
                d.rectangle((x, y, x + ww, y + wh), fill=win)
                y += wh + gap
            x += ww + gap
    else:  # shop fronts
        top = _jitter(rng, (62, 62, 70), sigma=8)
        d.rectangle((0, 0, bw, horizon), fill=top)
        x = 0.0
        while x < bw:
            w = rng.uniform(20, 60)
            col = _jitter(rng, _pick(rng, ((200, 60, 50), (60, 90, 160), (220, 210, 190), (90, 140, 90), (40, 40, 44))))
            d.rectangle((x, horizon * rng.uniform(0.1, 0.5), x + w, horizon), fill=col)
            x += w + rng.uniform(2, 10)
    # kerb, tiles, poles, parked bikes
    d.rectangle((0, horizon - 3, bw, horizon + 3), fill=_scale_rgb(ground, 0.75))
    tile = _scale_rgb(ground, rng.uniform(0.82, 0.92))
    step = rng.uniform(18, 34)
    y = horizon + step * rng.uniform(0.2, 1.0)
    while y < bh:
        d.line((0, y, bw, y + rng.uniform(-6, 6)), fill=tile, width=2)
        y += step * (1 + (y - horizon) / bh)
    slope = rng.uniform(-0.4, 0.4)
    x = rng.uniform(0, step)
    while x < bw + 40:
        d.line((x, horizon, x + slope * (bh - horizon), bh), fill=tile, width=2)
        x += step * 1.3
    for _ in range(int(rng.integers(0, 3))):
        x = rng.uniform(0, bw)
        d.rectangle((x, 0, x + rng.uniform(3, 7), horizon + rng.uniform(10, 60)), fill=_jitter(rng, (70, 72, 76)))
    for _ in range(int(rng.integers(0, 6))):
        x, r = rng.uniform(-10, bw), rng.uniform(10, 18)
        y = horizon + rng.uniform(-r, r)
        col = _jitter(rng, _pick(rng, ((30, 30, 34), (70, 70, 76), (120, 30, 30), (40, 60, 110))))
        d.ellipse((x - r, y - r, x + r, y + r), outline=col, width=3)
        d.ellipse((x + 1.6 * r, y - r, x + 3.6 * r, y + r), outline=col, width=3)
        d.line((x, y, x + 1.3 * r, y - r, x + 2.6 * r, y), fill=col, width=3)
    arr = np.asarray(img, np.float32)
    grad = np.linspace(rng.uniform(-18, 8), rng.uniform(-8, 18), bh, dtype=np.float32)[:, None, None]
    arr = arr + grad + _low_freq_noise(rng, bh, bw)[:, :, None]
    return Camera(
        camid=int(camid),
        background=np.clip(arr, 0, 255).astype(np.uint8),
        gain=float(rng.uniform(0.82, 1.14)),
        tint=tuple(float(t) for t in rng.uniform(0.93, 1.07, 3)),
        noise=float(rng.uniform(1.5, 4.5)),
        sharpness=(float(rng.uniform(0.45, 0.6)), float(rng.uniform(0.7, 0.95))),
    )


# --------------------------------------------------------------------------------------------- rendering
def _lerp(p, q, t):
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


def _fill_pattern(canvas: Image.Image, polygons, rgbs, pattern: str, rng: np.random.Generator) -> None:
    """Fill the union of ``polygons`` with a 2-3 colour pattern (multicolour clothing)."""
    xs = [p[0] for poly in polygons for p in poly]
    ys = [p[1] for poly in polygons for p in poly]
    x0, y0 = int(math.floor(min(xs))), int(math.floor(min(ys)))
    x1, y1 = int(math.ceil(max(xs))) + 1, int(math.ceil(max(ys))) + 1
    w, h = max(x1 - x0, 1), max(y1 - y0, 1)
    tex = Image.new("RGB", (w, h), rgbs[0])
    td = ImageDraw.Draw(tex)
    k = len(rgbs)
    if pattern == "stripes":
        period = rng.uniform(5, 10)
        y, i = rng.uniform(-period, 0), 0
        while y < h:
            td.rectangle((0, y, w, y + period / 2), fill=rgbs[1 + i % (k - 1)])
            y, i = y + period, i + 1
    elif pattern == "vstripes":
        period = rng.uniform(6, 11)
        x, i = rng.uniform(-period, 0), 0
        while x < w:
            td.rectangle((x, 0, x + period / 2, h), fill=rgbs[1 + i % (k - 1)])
            x, i = x + period, i + 1
    elif pattern == "halves":
        td.rectangle((w / 2, 0, w, h), fill=rgbs[1])
        if k > 2:
            td.rectangle((0, h * 0.6, w, h), fill=rgbs[2])
    else:  # print: blobs of the other colours
        for _ in range(int(w * h / 50)):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 4.5)
            td.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rgbs[1 + int(rng.integers(k - 1))])
    mask = Image.new("L", (w, h), 0)
    md = ImageDraw.Draw(mask)
    for poly in polygons:
        md.polygon([(px - x0, py - y0) for px, py in poly], fill=255)
    canvas.paste(tex, (x0, y0), mask)


def _fill(draw, canvas, polygons, rgbs, pattern, rng, shade=None):
    if pattern == "plain" or len(rgbs) == 1:
        for poly in polygons:
            draw.polygon(poly, fill=rgbs[0])
        if shade is not None:
            draw.polygon(shade, fill=_scale_rgb(rgbs[0], 0.84))
    else:
        _fill_pattern(canvas, polygons, rgbs, pattern, rng)


def _draw_person(canvas: Image.Image, ident: Identity, rng: np.random.Generator) -> None:
    """Draw one pedestrian on the supersampled canvas (coordinates in canvas pixels)."""
    d = ImageDraw.Draw(canvas)
    a = ident.attrs
    young, female = a["age"] == 1, ident.is_female
    view = _pick(rng, ("front", "back", "side"), (0.4, 0.3, 0.3))
    cj = rng.uniform(0.95, 1.05)  # per-image colour jitter of the clothes
    upper = tuple(_scale_rgb(c, cj) for c in ident.upper_rgbs)
    lower = tuple(_scale_rgb(c, cj) for c in ident.lower_rgbs)
    skin = ident.skin

    H = _CH * 0.93 * ident.height * rng.uniform(0.95, 1.03)
    cx = _CW / 2 + rng.normal(0, 2.5 * _SS)
    foot = _CH - rng.uniform(1, 6) * _SS
    y0 = foot - H
    if young:
        y0 = max(y0, rng.uniform(2, 8) * _SS)  # crops of children are zoomed in: keep the head near the top
        H = foot - y0
    hh = H * (0.175 if young else 0.14)  # head height
    hw = hh * 0.78
    ys = y0 + hh + H * 0.02  # shoulders
    yw = ys + H * (0.29 if young else 0.32)  # waist
    ya = y0 + H * 0.965  # ankles
    gender_w = 0.92 if female else 1.08
    sw = H * 0.29 * gender_w * ident.build * (1.1 if young else 1.0)  # shoulder width
    ww = sw * (0.8 if female else 0.9)  # waist width
    hip = sw * (1.0 if female else 0.88)
    aw = H * 0.062  # arm width
    lw = H * 0.075  # leg width at the hip
    side = view == "side"
    if side:
        sw, ww, hip = sw * 0.6, sw * 0.6 * 0.95, sw * 0.6
    swing = rng.uniform(-1, 1)

    # --- bystander at the edge (behind)
    if rng.random() < 0.25:
        s = 1 if rng.random() < 0.5 else -1
        bx = _CW / 2 + s * (_CW / 2 + rng.uniform(-2, 14) * _SS)
        bcol = _jitter(
            rng,
            _pick(rng, tuple(_COLOUR_VARIANTS["black"] + _COLOUR_VARIANTS["white"] + _COLOUR_VARIANTS["blue"] + _COLOUR_VARIANTS["red"])),
        )
        by = rng.uniform(0, 20) * _SS
        d.rectangle((bx - sw / 2, by + H * 0.16, bx + sw / 2, by + H * 0.5), fill=bcol)
        d.rectangle((bx - sw / 2.4, by + H * 0.5, bx + sw / 2.4, _CH), fill=_jitter(rng, (50, 60, 90)))
        d.ellipse((bx - hw / 2, by, bx + hw / 2, by + hh), fill=_jitter(rng, _pick(rng, _SKIN)))

    # --- behind the body: backpack body (front view peeks out above the shoulders), long hair (front)
    bp_w, bp_h = sw * (0.9 if not side else 1.0), H * 0.25
    if a["backpack"] == 2 and view == "front":
        d.rounded_rectangle(
            (cx - bp_w / 2 - H * 0.015, ys - H * 0.035, cx + bp_w / 2 + H * 0.015, ys + bp_h), radius=4, fill=ident.backpack_rgb
        )
    if a["hair"] == 2 and view == "front":
        d.rectangle((cx - hw * 0.58, y0 + hh * 0.4, cx + hw * 0.58, ys + H * 0.06), fill=ident.hair_rgb)

    # --- legs
    spread = rng.uniform(0.0, 0.035) * H
    if side:
        st = swing * 0.09 * H
        ankles = (cx - st, cx + st)
        hips = ((cx - lw / 2, cx + lw / 2), (cx - lw / 2, cx + lw / 2))
    else:
        ankles = (cx - hip * 0.28 - spread, cx + hip * 0.28 + spread)
        hips = ((cx - hip / 2, cx - H * 0.004), (cx + H * 0.004, cx + hip / 2))
    ankle_w = H * 0.052
    legs = []
    for (hx0, hx1), ax in zip(hips, ankles):
        legs.append([(hx0, yw - 2), (hx1, yw - 2), (ax + ankle_w / 2, ya), (ax - ankle_w / 2, ya)])
    for ax in ankles:  # shoes
        d.ellipse(
            (ax - ankle_w * 0.8 + (H * 0.015 if side else 0), ya - H * 0.018, ax + ankle_w * 0.8 + (H * 0.03 if side else 0), foot),
            fill=ident.shoe_rgb,
        )
    short_lower = a["down"] == 2
    if a["clothes"] == 1:  # dress / skirt over skin legs
        for leg in legs:
            thin = [leg[0], _lerp(leg[0], leg[1], 0.75), leg[2], leg[3]]
            d.polygon(thin, fill=skin)
        t_hem = rng.uniform(0.38, 0.48) if short_lower else rng.uniform(0.84, 0.9)
        yh = yw + (ya - yw) * t_hem
        flare = (1.45 if short_lower else 1.4) * hip + (abs(swing) * 0.06 * H if side else 0)
        skirt = [(cx - ww / 2, yw - 3), (cx + ww / 2, yw - 3), (cx + flare / 2, yh), (cx - flare / 2, yh)]
        _fill(
            d,
            canvas,
            [skirt],
            lower,
            ident.lower_pattern,
            rng,
            shade=[(cx + ww / 4, yw - 3), (cx + ww / 2, yw - 3), (cx + flare / 2, yh), (cx + flare / 4, yh)],
        )
    else:  # trousers / shorts
        t_knee = rng.uniform(0.4, 0.5) if short_lower else 1.0
        if short_lower:
            for leg in legs:
                d.polygon(leg, fill=skin)
        pants = []
        for leg in legs:
            bl, br = _lerp(leg[0], leg[3], t_knee), _lerp(leg[1], leg[2], t_knee)
            if short_lower:  # shorts are a little wider than the leg
                bl, br = (bl[0] - H * 0.008, bl[1]), (br[0] + H * 0.008, br[1])
            pants.append([leg[0], leg[1], br, bl])
        pelvis = [(cx - hip / 2, yw - 3), (cx + hip / 2, yw - 3), (cx + hip / 2, yw + H * 0.06), (cx - hip / 2, yw + H * 0.06)]
        _fill(
            d,
            canvas,
            [pelvis, *pants],
            lower,
            ident.lower_pattern,
            rng,
            shade=pants[-1][1:3] + [_lerp(pants[-1][2], pants[-1][3], 0.45), _lerp(pants[-1][1], pants[-1][0], 0.45)],
        )

    # --- torso
    torso = [
        (cx - sw * 0.3, ys - H * 0.012),
        (cx + sw * 0.3, ys - H * 0.012),
        (cx + sw / 2, ys + H * 0.035),
        (cx + ww / 2, yw),
        (cx - ww / 2, yw),
        (cx - sw / 2, ys + H * 0.035),
    ]
    shade = [(cx + sw * 0.25, ys), (cx + sw / 2, ys + H * 0.035), (cx + ww / 2, yw), (cx + ww * 0.22, yw)]
    _fill(d, canvas, [torso], upper, ident.upper_pattern, rng, shade=shade)

    # --- backpack on the back (back view: over the torso; side view: sticks out behind)
    if a["backpack"] == 2 and view == "back":
        bp_w = sw * 0.74  # narrower than the torso: the shirt colour stays visible at the sides
        d.rounded_rectangle((cx - bp_w / 2, ys + H * 0.02, cx + bp_w / 2, ys + H * 0.02 + bp_h), radius=5, fill=ident.backpack_rgb)
        d.line((cx - bp_w * 0.3, ys + H * 0.1, cx + bp_w * 0.3, ys + H * 0.1), fill=_scale_rgb(ident.backpack_rgb, 0.7), width=2)
    if a["backpack"] == 2 and side:
        bx1 = cx - sw / 2 + H * 0.02
        d.rounded_rectangle((bx1 - H * 0.11, ys + H * 0.015, bx1, ys + H * 0.015 + bp_h), radius=5, fill=ident.backpack_rgb)
        d.line(
            (cx - sw * 0.1, ys - H * 0.01, cx + sw * 0.2, ys + H * 0.12),
            fill=_scale_rgb(ident.backpack_rgb, 0.9),
            width=max(2, int(H * 0.02)),
        )

    # --- neck, head, hair, hat
    d.rectangle((cx - hw * 0.2, y0 + hh * 0.8, cx + hw * 0.2, ys + H * 0.005), fill=_scale_rgb(skin, 0.92))
    head = (cx - hw / 2, y0, cx + hw / 2, y0 + hh)
    hair = ident.hair_rgb
    if view == "back":
        d.ellipse(head, fill=hair)
        if a["hair"] == 2:  # long hair down the back
            d.polygon(
                [
                    (cx - hw * 0.52, y0 + hh * 0.5),
                    (cx + hw * 0.52, y0 + hh * 0.5),
                    (cx + hw * 0.62, ys + H * 0.13),
                    (cx - hw * 0.62, ys + H * 0.13),
                ],
                fill=hair,
            )
    elif side:
        d.ellipse(head, fill=skin)
        d.pieslice((head[0] - 1, head[1] - 2, head[2] + 1, head[3]), 110, 335, fill=hair)
        if a["hair"] == 2:
            d.polygon(
                [
                    (cx - hw * 0.5, y0 + hh * 0.45),
                    (cx - hw * 0.05, y0 + hh * 0.45),
                    (cx - hw * 0.2, ys + H * 0.12),
                    (cx - hw * 0.6, ys + H * 0.11),
                ],
                fill=hair,
            )
    else:
        d.ellipse(head, fill=skin)
        d.chord((head[0] - 1, head[1] - 2, head[2] + 1, head[3] - hh * 0.2), 180, 360, fill=hair)
        if a["hair"] == 2:  # strands falling on the shoulders
            for s in (-1, 1):
                d.polygon(
                    [
                        (cx + s * hw * 0.52, y0 + hh * 0.3),
                        (cx + s * hw * 0.28, y0 + hh * 0.45),
                        (cx + s * hw * 0.42, ys + H * 0.09),
                        (cx + s * hw * 0.78, ys + H * 0.08),
                    ],
                    fill=hair,
                )
    if a["hat"] == 2:
        hat = ident.hat_rgb
        d.chord((head[0] - 2, head[1] - hh * 0.12, head[2] + 2, head[1] + hh * 0.75), 180, 360, fill=hat)
        if view == "front":
            d.ellipse((cx - hw * 0.62, y0 + hh * 0.26, cx + hw * 0.62, y0 + hh * 0.42), fill=_scale_rgb(hat, 0.85))
        elif side:
            d.polygon(
                [(cx, y0 + hh * 0.26), (cx + hw * 0.85, y0 + hh * 0.3), (cx + hw * 0.85, y0 + hh * 0.38), (cx, y0 + hh * 0.38)],
                fill=_scale_rgb(hat, 0.85),
            )

    # --- arms (sleeves)
    short_sleeve = a["up"] == 2
    hands = []
    if side:
        sh = (cx - H * 0.005, ys + aw * 0.5)
        hand = (cx + swing * H * 0.13, yw + H * 0.04 - abs(swing) * H * 0.03)
        arms = [(sh, hand)]
    else:
        arms = []
        for s in (-1, 1):
            sh = (cx + s * (sw / 2 - aw * 0.45), ys + aw * 0.45)
            hand = (cx + s * (sw / 2 + rng.uniform(0.0, 0.035) * H), yw + H * 0.05 - abs(swing) * H * 0.02)
            arms.append((sh, hand))
    for sh, hand in arms:
        t_sleeve = rng.uniform(0.28, 0.38) if short_sleeve else 0.93
        elbow = _lerp(sh, hand, t_sleeve)
        d.line((sh, hand), fill=skin, width=int(aw * 0.85))
        d.line((sh, elbow), fill=upper[0], width=int(aw + (2 if short_sleeve else 0)))
        d.ellipse((sh[0] - aw / 2, sh[1] - aw / 2, sh[0] + aw / 2, sh[1] + aw / 2), fill=upper[0])
        d.ellipse((hand[0] - aw * 0.45, hand[1] - aw * 0.4, hand[0] + aw * 0.45, hand[1] + aw * 0.6), fill=skin)
        hands.append(hand)

    # --- accessories in front of the body
    if a["backpack"] == 2 and view == "front":  # straps
        for s in (-1, 1):
            d.line(
                ((cx + s * sw * 0.28, ys - H * 0.01), (cx + s * sw * 0.32, ys + H * 0.17)),
                fill=_scale_rgb(ident.backpack_rgb, 0.85),
                width=max(2, int(H * 0.03)),
            )
    if a["bag"] == 2:
        s = ident.bag_side * (-1 if view == "back" else 1)
        if side:
            strap0, bag_c = (cx + sw * 0.1, ys), (cx - sw * 0.25, yw + H * 0.02)
        else:
            strap0, bag_c = (cx + s * sw * 0.3, ys), (cx - s * (hip / 2 + H * 0.03), yw + H * 0.02)
        d.line((strap0, bag_c), fill=_scale_rgb(ident.bag_rgb, 0.8), width=max(2, int(H * 0.014)))
        bw2, bh2 = H * 0.075, H * 0.055
        d.rectangle((bag_c[0] - bw2, bag_c[1] - bh2 * 0.6, bag_c[0] + bw2, bag_c[1] + bh2 * 1.4), fill=ident.bag_rgb)
    if a["handbag"] == 2:
        hand = hands[0] if (len(hands) == 1 or ident.hand_side < 0) else hands[1]
        bw2, bh2 = H * 0.055, H * 0.085
        top = hand[1] + H * 0.035
        d.line((hand, (hand[0] - bw2 * 0.6, top), (hand[0] + bw2 * 0.6, top), hand), fill=_scale_rgb(ident.handbag_rgb, 0.8), width=2)
        d.rectangle((hand[0] - bw2, top, hand[0] + bw2, top + bh2), fill=ident.handbag_rgb)

    # --- bike in front (occluder)
    if rng.random() < 0.1:
        col = _jitter(rng, _pick(rng, ((30, 30, 34), (70, 70, 76), (120, 30, 30), (40, 60, 110))))
        r = H * rng.uniform(0.12, 0.16)
        wy = foot - r
        wx = cx + rng.uniform(-0.1, 0.1) * H
        for dx in (-1.2 * r, 1.2 * r):
            d.ellipse((wx + dx - r, wy - r, wx + dx + r, wy + r), outline=col, width=max(3, int(H * 0.018)))
        d.line(((wx - 1.2 * r, wy), (wx, wy - r * 1.1), (wx + 1.2 * r, wy), (wx, wy)), fill=col, width=max(2, int(H * 0.014)))


def render_image(ident: Identity, camera: Camera, rng: np.random.Generator) -> Image.Image:
    """Render one 64x128 RGB image of ``ident`` seen by ``camera`` (random view, pose, jitter)."""
    bg = camera.background
    oy = int(rng.integers(0, bg.shape[0] - _CH + 1))
    ox = int(rng.integers(0, bg.shape[1] - _CW + 1))
    canvas = Image.fromarray(bg[oy : oy + _CH, ox : ox + _CW])
    _draw_person(canvas, ident, rng)
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # sharpness: down to a camera-dependent resolution, back up to 64x128
    s = rng.uniform(*camera.sharpness)
    small = canvas.resize((max(8, round(WIDTH * s)), max(16, round(HEIGHT * s))), Image.Resampling.BILINEAR, reducing_gap=2.0)
    img = small.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    arr = np.asarray(img, np.float32)
    gain = camera.gain * rng.uniform(0.93, 1.07)
    arr = arr * (np.asarray(camera.tint, np.float32) * gain) + rng.normal(0.0, camera.noise, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- dataset
def _params(num_train_ids, num_test_ids, images_per_id, num_cameras, seed, jpeg_quality) -> dict:
    lo, hi = (int(v) for v in images_per_id)
    return {
        "num_train_ids": int(num_train_ids),
        "num_test_ids": int(num_test_ids),
        "images_per_id": [lo, hi],
        "num_cameras": int(num_cameras),
        "seed": int(seed),
        "jpeg_quality": int(jpeg_quality),
    }


def _validate(p: dict) -> None:
    lo, hi = p["images_per_id"]
    if p["num_train_ids"] < 1 or p["num_test_ids"] < 0:
        raise ValueError("need num_train_ids >= 1 and num_test_ids >= 0")
    if not 2 <= lo <= hi:
        raise ValueError(f"images_per_id must satisfy 2 <= lo <= hi, got {(lo, hi)}")
    if not 1 <= p["num_cameras"] <= 9:
        raise ValueError("num_cameras must be in 1..9 (one digit in the file names)")
    if p["num_train_ids"] + p["num_test_ids"] > 9999:
        raise ValueError("at most 9999 identities (4-digit pids)")
    if not 1 <= p["jpeg_quality"] <= 100:
        raise ValueError("jpeg_quality must be in 1..100")
    if not 0 <= p["seed"] < 2**63:
        raise ValueError("seed must be a non-negative integer")


def load_synthetic_metadata(root: str | Path) -> dict | None:
    """The ``synthetic.json`` of a dataset at ``root``, or None when absent or unreadable."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads((Path(root) / META_NAME).read_text(encoding="utf-8"))
    return None


def _is_complete(root: Path, params: dict) -> bool:
    meta = load_synthetic_metadata(root)
    if not meta or meta.get("version") != SYNTHETIC_VERSION or meta.get("params") != params:
        return False
    counts = meta.get("counts", {})
    try:
        for sub in ("train", "test", "queries"):
            if sum(1 for _ in os.scandir(root / sub)) != counts.get(sub):
                return False
    except OSError:
        return False
    names = ("annotations_train.csv", "test_ground_truth.csv", "queries_ground_truth.csv")
    return all((root / n).is_file() for n in names)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


_TAG_ROOT, _TAG_CAMERA, _TAG_IDENTITY, _TAG_IMAGE, _TAG_LAYOUT = 11, 12, 13, 14, 15


def _plan_identity(pid: int, rng: np.random.Generator, p: dict) -> list[int]:
    """Camera of each image of one identity: >= 2 distinct cameras when there are >= 2 cameras."""
    lo, hi = p["images_per_id"]
    n = int(rng.integers(lo, hi + 1))
    ncam = p["num_cameras"]
    k = int(rng.integers(min(2, ncam), ncam + 1))
    cams = [int(c) + 1 for c in rng.choice(ncam, size=k, replace=False)]
    order = cams[: min(n, k)] + [cams[int(i)] for i in rng.integers(0, k, size=max(0, n - k))]
    return [order[i] for i in rng.permutation(n)]


def _write_dataset(tmp: Path, p: dict) -> dict:
    seed = p["seed"]
    root_rng = _rng(_TAG_ROOT, seed)
    n_train, n_test = p["num_train_ids"], p["num_test_ids"]
    pool = max(_MAX_PID, n_train + n_test)
    pids = [int(v) + 1 for v in root_rng.choice(pool, size=n_train + n_test, replace=False)]
    train_pids, test_pids = sorted(pids[:n_train]), sorted(pids[n_train:])
    cameras = {c: make_camera(c, _rng(_TAG_CAMERA, seed, c)) for c in range(1, p["num_cameras"] + 1)}
    identities = {pid: sample_identity(pid, _rng(_TAG_IDENTITY, seed, pid)) for pid in pids}
    plans = {pid: _plan_identity(pid, _rng(_TAG_LAYOUT, seed, pid), p) for pid in pids}
    quality = p["jpeg_quality"]

    def render(pid: int, k: int, cam: int) -> bytes:
        return _jpeg_bytes(render_image(identities[pid], cameras[cam], _rng(_TAG_IMAGE, seed, pid, k)), quality)

    # train
    (tmp / "train").mkdir()
    n_train_images = sum(len(plans[pid]) for pid in train_pids)
    frames = iter(int(v) for v in root_rng.choice(10**9, size=n_train_images, replace=False))
    for pid in train_pids:
        for k, cam in enumerate(plans[pid]):
            (tmp / "train" / f"{pid:04d}_c{cam}_{next(frames):09d}.jpg").write_bytes(render(pid, k, cam))
    rows = [identities[pid].row() for pid in train_pids]
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS)).iloc[root_rng.permutation(len(rows))]
    table.to_csv(tmp / "annotations_train.csv", index=False, lineterminator="\n")

    # test gallery (shuffled numbering) and queries (one copy per identity and camera)
    (tmp / "test").mkdir()
    (tmp / "queries").mkdir()
    items = [(pid, k, cam) for pid in test_pids for k, cam in enumerate(plans[pid])]
    order = root_rng.permutation(len(items))
    attr_cols = list(CSV_COLUMNS[1:])
    gallery_rows, by_pid_cam = [], {}
    for number, idx in enumerate(order):
        pid, k, cam = items[int(idx)]
        name = f"{number:06d}.jpg"
        (tmp / "test" / name).write_bytes(render(pid, k, cam))
        attrs = identities[pid].row()
        gallery_rows.append({"name": name, "pid": pid, "camid": cam, **{c: attrs[c] for c in attr_cols}})
        by_pid_cam.setdefault((pid, cam), []).append(name)
    choices = [(key, names[int(root_rng.integers(len(names)))]) for key, names in sorted(by_pid_cam.items())]
    query_rows = []
    for number, idx in enumerate(root_rng.permutation(len(choices))):
        (pid, cam), source = choices[int(idx)]
        name = f"{number:06d}.jpg"
        shutil.copyfile(tmp / "test" / source, tmp / "queries" / name)
        attrs = identities[pid].row()
        query_rows.append({"name": name, "pid": pid, "camid": cam, **{c: attrs[c] for c in attr_cols}, "gallery_copy": source})
    gt_cols = ["name", "pid", "camid", *attr_cols]
    pd.DataFrame(gallery_rows, columns=gt_cols).to_csv(tmp / "test_ground_truth.csv", index=False, lineterminator="\n")
    pd.DataFrame(query_rows, columns=[*gt_cols, "gallery_copy"]).to_csv(tmp / "queries_ground_truth.csv", index=False, lineterminator="\n")

    counts = {"train": n_train_images, "test": len(gallery_rows), "queries": len(query_rows), "train_ids": n_train, "test_ids": n_test}
    meta = {"generator": "src.data.synthetic", "version": SYNTHETIC_VERSION, "params": p, "counts": counts, "size": [WIDTH, HEIGHT]}
    (tmp / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def generate_synthetic_dataset(
    root: str | Path,
    *,
    num_train_ids: int = 80,
    num_test_ids: int = 30,
    images_per_id: tuple[int, int] = (4, 10),
    num_cameras: int = 6,
    seed: int = 0,
    jpeg_quality: int = 90,
) -> Path:
    """Write a synthetic dataset in the course layout at ``root`` (see the module docstring); return ``root``.

    A complete dataset with the same parameters already at ``root`` is reused as is. Otherwise the data are
    generated in a temporary sibling folder and renamed into place; an older synthetic dataset at ``root``
    is replaced, while a non-empty folder that is not a synthetic dataset is refused (ValueError).
    """
    given = Path(root)
    root = Path(os.path.abspath(given))
    p = _params(num_train_ids, num_test_ids, images_per_id, num_cameras, seed, jpeg_quality)
    _validate(p)
    if _is_complete(root, p):
        return given
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / META_NAME).is_file():
        raise ValueError(f"{root} is a non-empty folder without {META_NAME}: refusing to replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    tmp = root.parent / f".{root.name}.tmp-{token}"
    tmp.mkdir()
    try:
        _write_dataset(tmp, p)
        if _is_complete(root, p):  # someone else finished the same dataset meanwhile
            shutil.rmtree(tmp)
            return given
        old = None
        if root.is_dir():
            old = root.parent / f".{root.name}.old-{token}"
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return given


# ------------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src.data.synthetic", description="Generate a synthetic Market-1501-like dataset in the course layout."
    )
    ap.add_argument("root", type=Path)
    ap.add_argument("--num-train-ids", type=int, default=80)
    ap.add_argument("--num-test-ids", type=int, default=30)
    ap.add_argument("--images-per-id", type=int, nargs=2, default=(4, 10), metavar=("MIN", "MAX"))
    ap.add_argument("--num-cameras", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jpeg-quality", type=int, default=90)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    root = generate_synthetic_dataset(
        args.root,
        num_train_ids=args.num_train_ids,
        num_test_ids=args.num_test_ids,
        images_per_id=tuple(args.images_per_id),
        num_cameras=args.num_cameras,
        seed=args.seed,
        jpeg_quality=args.jpeg_quality,
    )
    dt = time.perf_counter() - t0
    c = load_synthetic_metadata(root)["counts"]
    print(
        f"{root}: {c['train_ids']} train ids / {c['train']} train images, {c['test_ids']} test ids / {c['test']} gallery / "
        f"{c['queries']} queries ({dt:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
