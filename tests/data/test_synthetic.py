"""Tests of the synthetic Market-like dataset generator (src/data/synthetic.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.data.attributes import BINARY_COLUMNS, CSV_COLUMNS, LOWER_COLOURS, UPPER_COLOURS, encode_annotations
from src.data.synthetic import (
    HEIGHT,
    WIDTH,
    Camera,
    generate_synthetic_dataset,
    load_synthetic_metadata,
    main,
    make_camera,
    render_image,
    sample_identity,
)

TRAIN_NAME = re.compile(r"^(\d{4})_c(\d)_(\d{9})\.jpg$")
NUMBERED_NAME = re.compile(r"^(\d{6})\.jpg$")
SMALL = dict(num_train_ids=8, num_test_ids=5, images_per_id=(2, 5), num_cameras=6, seed=3)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "market"
    assert generate_synthetic_dataset(root, **SMALL) == root
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------------- layout
def test_layout_and_names(small_root: Path):
    top = sorted(p.name for p in small_root.iterdir())
    assert top == sorted(["train", "test", "queries", "annotations_train.csv", "test_ground_truth.csv",
                          "queries_ground_truth.csv", "synthetic.json"])
    train = sorted(p.name for p in (small_root / "train").iterdir())
    matches = [TRAIN_NAME.match(n) for n in train]
    assert all(matches), [n for n, m in zip(train, matches) if not m]
    pids = Counter(int(m.group(1)) for m in matches)
    assert len(pids) == SMALL["num_train_ids"]
    assert all(1 <= pid <= 1500 for pid in pids)
    assert all(2 <= n <= 5 for n in pids.values()), pids
    assert {int(m.group(2)) for m in matches} <= set(range(1, 7))
    frames = [m.group(3) for m in matches]
    assert len(set(frames)) == len(frames), "the 9 digits must be unique per file"
    cams_per_pid = {pid: {int(m.group(2)) for m in matches if int(m.group(1)) == pid} for pid in pids}
    assert all(len(c) >= 2 for c in cams_per_pid.values()), "every identity is seen by >= 2 cameras"
    for sub in ("test", "queries"):
        names = sorted(p.name for p in (small_root / sub).iterdir())
        assert all(NUMBERED_NAME.match(n) for n in names), names
        assert names == [f"{i:06d}.jpg" for i in range(len(names))], "contiguous numbering from 000000"
    meta = load_synthetic_metadata(small_root)
    assert meta["params"]["seed"] == SMALL["seed"] and meta["version"] >= 1
    assert meta["counts"]["train"] == len(train)
    assert meta["counts"]["test"] == len(list((small_root / "test").iterdir()))


def test_images_are_64x128_rgb_jpeg(small_root: Path):
    paths = sorted(small_root.rglob("*.jpg"))
    assert len(paths) > 20
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "JPEG"
            assert im.size == (WIDTH, HEIGHT) == (64, 128)
            assert im.mode == "RGB"
    # not blank: real texture and contrast
    arr = np.asarray(Image.open(paths[0]), np.float32)
    assert arr.std() > 15


def test_annotations_csv(small_root: Path):
    text = (small_root / "annotations_train.csv").read_text()
    header, *lines = text.splitlines()
    assert header == ",".join(CSV_COLUMNS)
    table = pd.read_csv(small_root / "annotations_train.csv")
    assert tuple(table.columns) == CSV_COLUMNS
    assert all(not line.split(",")[0].startswith("0") for line in lines), "ids are written without zero padding"
    train_pids = {int(p.name[:4]) for p in (small_root / "train").iterdir()}
    assert set(table["id"]) == train_pids and len(table) == len(train_pids)
    assert table["age"].between(1, 4).all()
    for c in (*BINARY_COLUMNS, *UPPER_COLOURS, *LOWER_COLOURS):
        assert table[c].isin([1, 2]).all(), c
    assert ((table[list(UPPER_COLOURS)] == 2).sum(axis=1) <= 1).all()
    assert ((table[list(LOWER_COLOURS)] == 2).sum(axis=1) <= 1).all()
    assert table.dtypes.map(lambda t: np.issubdtype(t, np.integer)).all()
    encoded = encode_annotations(table)  # the project's own decoder accepts it
    assert encoded.shape == (len(table), 12)


def test_annotation_rows_are_shuffled(tmp_path: Path):
    root = generate_synthetic_dataset(tmp_path / "d", num_train_ids=30, num_test_ids=2, images_per_id=(2, 2), seed=0)
    ids = pd.read_csv(root / "annotations_train.csv")["id"].tolist()
    assert ids != sorted(ids)


def test_queries_are_byte_identical_copies(small_root: Path):
    test_bytes = {p.name: p.read_bytes() for p in (small_root / "test").iterdir()}
    by_content: dict[bytes, list[str]] = {}
    for name, b in test_bytes.items():
        by_content.setdefault(b, []).append(name)
    gallery = pd.read_csv(small_root / "test_ground_truth.csv", dtype={"name": str})
    queries = pd.read_csv(small_root / "queries_ground_truth.csv", dtype={"name": str, "gallery_copy": str})
    assert list(gallery.columns) == ["name", "pid", "camid", *CSV_COLUMNS[1:]]
    assert list(queries.columns) == ["name", "pid", "camid", *CSV_COLUMNS[1:], "gallery_copy"]
    assert sorted(gallery["name"]) == sorted(test_bytes)
    assert sorted(queries["name"]) == sorted(p.name for p in (small_root / "queries").iterdir())
    g = gallery.set_index("name")
    for row in queries.itertuples(index=False):
        copies = by_content.get((small_root / "queries" / row.name).read_bytes(), [])
        assert copies == [row.gallery_copy], (row.name, copies)
        assert (g.loc[row.gallery_copy, "pid"], g.loc[row.gallery_copy, "camid"]) == (row.pid, row.camid)
        assert (g.loc[row.gallery_copy, list(CSV_COLUMNS[1:])] == pd.Series(row._asdict())[list(CSV_COLUMNS[1:])]).all()
    # exactly one query per (test identity, camera)
    assert sorted(zip(queries.pid, queries.camid)) == sorted(set(zip(gallery.pid, gallery.camid)))
    # test identities are disjoint from train identities and each test identity has >= 2 cameras
    train_pids = {int(p.name[:4]) for p in (small_root / "train").iterdir()}
    assert not train_pids & set(gallery["pid"])
    assert gallery["pid"].nunique() == SMALL["num_test_ids"]
    assert (gallery.groupby("pid")["camid"].nunique() >= 2).all()


# ------------------------------------------------------------------------------------- determinism, cache
def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path, small_root: Path):
    again = generate_synthetic_dataset(tmp_path / "again", **SMALL)
    a, b = _files(small_root), _files(again)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    other = _files(generate_synthetic_dataset(tmp_path / "other", **{**SMALL, "seed": 4}))
    assert other["annotations_train.csv"] != a["annotations_train.csv"]
    assert sorted(k for k in other if k.startswith("train")) != sorted(k for k in a if k.startswith("train"))
    assert other["test/000000.jpg"] != a["test/000000.jpg"]


def test_cache_is_reused_and_parameters_regenerate(tmp_path: Path):
    root = tmp_path / "cache"
    params = dict(num_train_ids=3, num_test_ids=2, images_per_id=(2, 3), seed=7)
    generate_synthetic_dataset(root, **params)
    before = _mtimes(root)
    generate_synthetic_dataset(root, **params)
    assert _mtimes(root) == before, "a complete dataset with the same parameters must not be rewritten"

    generate_synthetic_dataset(root, **{**params, "jpeg_quality": 70})
    meta = json.loads((root / "synthetic.json").read_text())
    assert meta["params"]["jpeg_quality"] == 70
    assert _mtimes(root) != before
    assert [p.name for p in tmp_path.iterdir()] == ["cache"], "no temporary or old folders left behind"

    # an incomplete dataset (a file went missing) is regenerated
    victim = sorted((root / "train").iterdir())[0]
    victim.unlink()
    generate_synthetic_dataset(root, **{**params, "jpeg_quality": 70})
    assert victim.is_file()


def test_refuses_to_replace_foreign_folder_and_bad_parameters(tmp_path: Path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError):
        generate_synthetic_dataset(foreign, num_train_ids=2, num_test_ids=1, images_per_id=(2, 2))
    assert (foreign / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError):
        generate_synthetic_dataset(tmp_path / "x", images_per_id=(1, 3))
    with pytest.raises(ValueError):
        generate_synthetic_dataset(tmp_path / "y", num_cameras=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_cli(tmp_path: Path, capsys):
    root = tmp_path / "cli"
    assert main([str(root), "--num-train-ids", "3", "--num-test-ids", "2", "--images-per-id", "2", "3", "--seed", "5"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "3 train ids" in out
    assert load_synthetic_metadata(root)["params"]["seed"] == 5


# --------------------------------------------------------------------------------------- attribute priors
def test_priors_roughly_like_the_course_data():
    rows = pd.DataFrame([sample_identity(i, np.random.default_rng([99, i])).row() for i in range(1500)])
    freq = lambda c: (rows[c] == 2).mean()  # noqa: E731
    assert rows["age"].value_counts(normalize=True).idxmax() == 2  # "teenager" dominates the course data
    assert set(rows["age"]) == {1, 2, 3, 4}
    assert 0.35 < freq("gender") < 0.55
    assert 0.05 < freq("hat") < 0.12
    assert 0.75 < freq("up") < 0.92  # mostly short sleeves
    assert 0.45 < freq("down") < 0.75  # short lower-body clothing is common (summer)
    assert 0.18 < freq("backpack") < 0.32 and 0.2 < freq("bag") < 0.34 and 0.08 < freq("handbag") < 0.25
    assert not ((rows["gender"] == 1) & (rows["clothes"] == 1)).any(), "no man in a dress"
    assert (rows.loc[rows.gender == 2, "hair"] == 2).mean() > 0.6 > (rows.loc[rows.gender == 1, "hair"] == 2).mean()
    up_multi = ((rows[list(UPPER_COLOURS)] == 2).sum(axis=1) == 0).mean()
    down_multi = ((rows[list(LOWER_COLOURS)] == 2).sum(axis=1) == 0).mean()
    assert 0.06 < up_multi < 0.14 and 0.04 < down_multi < 0.11
    assert all(freq(c) > 0.01 for c in (*UPPER_COLOURS, *LOWER_COLOURS)), "every colour occurs"


# ----------------------------------------------------------------------------------- attribute visibility
def _plain_camera(grey: int = 128) -> Camera:
    return Camera(camid=1, background=np.full((HEIGHT * 4, WIDTH * 4, 3), grey, np.uint8), gain=1.0,
                  tint=(1.0, 1.0, 1.0), noise=0.0, sharpness=(1.0, 1.0))


def _renders(n: int, camera: Camera | None = None, seed: int = 0, **attrs) -> np.ndarray:
    """(n, 128, 64, 3) float images of n different identities sharing ``attrs``."""
    cams = [make_camera(c, np.random.default_rng([1, c])) for c in range(1, 7)]
    out = []
    for i in range(n):
        ident = sample_identity(i, np.random.default_rng([seed, i]), **attrs)
        cam = camera or cams[i % 6]
        out.append(np.asarray(render_image(ident, cam, np.random.default_rng([seed, i, 1])), np.float32))
    return np.stack(out)


def test_upper_colour_is_visible_on_the_torso():
    red = _renders(30, upcolor=UPPER_COLOURS.index("upred"), backpack=1)
    blue = _renders(30, upcolor=UPPER_COLOURS.index("upblue"), backpack=1)
    torso = (slice(35, 60), slice(24, 40))  # rows, columns of the torso in a 64x128 crop
    redness = lambda x: (x[:, torso[0], torso[1], 0] - x[:, torso[0], torso[1], 2]).mean()  # noqa: E731
    assert redness(red) > redness(blue) + 60


def test_lower_colour_is_visible_on_the_legs():
    black = _renders(30, downcolor=LOWER_COLOURS.index("downblack"))
    white = _renders(30, downcolor=LOWER_COLOURS.index("downwhite"))
    hips = (slice(72, 85), slice(26, 38))
    assert white[:, hips[0], hips[1]].mean() > black[:, hips[0], hips[1]].mean() + 60


def test_dress_is_wider_than_trousers_below_the_waist():
    cam = _plain_camera(255)
    common = dict(downcolor=LOWER_COLOURS.index("downblack"), down=2, gender=2, backpack=1, bag=1, handbag=1)
    dress = _renders(40, cam, clothes=1, **common)
    trousers = _renders(40, cam, clothes=2, **common)
    band = slice(74, 84)  # thighs, below the hands, above a short skirt's hem
    dark_width = lambda x: (x[:, band].mean(axis=3) < 90).sum(axis=2).mean()  # noqa: E731
    assert dark_width(dress) > 1.25 * dark_width(trousers)


def _skin_fraction(x: np.ndarray, rows: slice, cols: slice | None = None) -> float:
    """Fraction of skin-like pixels (reddish, not saturated, brighter than dark clothes)."""
    p = x[:, rows] if cols is None else x[:, rows, cols]
    r, g, b = p[..., 0], p[..., 1], p[..., 2]
    return float(((r > 110) & (r > g + 10) & (g > b + 8) & (r - b < 110)).mean())


def test_sleeve_and_lower_length_show_skin():
    cam = _plain_camera(60)
    colours = dict(upcolor=UPPER_COLOURS.index("upblue"), downcolor=LOWER_COLOURS.index("downblue"), clothes=2)
    short = _renders(30, cam, up=2, down=2, **colours)
    long = _renders(30, cam, up=1, down=1, **colours)
    arms, shins = slice(38, 66), slice(98, 118)
    assert _skin_fraction(short, arms) > 1.5 * _skin_fraction(long, arms) + 0.005
    assert _skin_fraction(short, shins) > 3 * _skin_fraction(long, shins) + 0.01


def test_binary_accessories_change_the_image():
    """Each of hat / backpack / bag / handbag / long hair changes the mean image more than resampling does."""
    cam = _plain_camera(128)
    base = dict(hat=1, backpack=1, bag=1, handbag=1, hair=1, gender=2, clothes=2)
    ref_a = _renders(40, cam, seed=0, **base)
    ref_b = _renders(40, cam, seed=0, **base)  # same seeds: identical, sanity of determinism
    assert np.array_equal(ref_a, ref_b)
    for name in ("hat", "backpack", "bag", "handbag", "hair"):
        on = _renders(40, cam, seed=0, **{**base, name: 2})
        changed = np.abs(on - ref_a).mean(axis=3) > 25  # pixels that changed, per image
        assert changed.mean() > 0.005, name
        assert changed.any(axis=(1, 2)).mean() > 0.8, f"{name} should be visible in most images"
