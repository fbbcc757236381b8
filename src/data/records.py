"""Parsing layer: folders, CSV and .mat files -> plain image records. No tensors here."""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.attributes import (
    BINARY_COLUMNS,
    CSV_COLUMNS,
    LOWER_COLOURS,
    UPPER_COLOURS,
    encode_annotations,
)
from src.errors import KnownError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
COURSE_NAME = re.compile(r"(\d{4})_c(\d)_(\d+)\.(?:jpe?g|png)", re.IGNORECASE | re.ASCII)
STANDARD_NAME = re.compile(r"(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.(?:jpe?g|png)", re.IGNORECASE | re.ASCII)


class DataError(KnownError, ValueError):
    """Bad input data: the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    pid: int  # -1 when unknown (unlabelled images)
    camid: int  # 1-based camera, -1 when unknown
    labels: tuple[int, ...] | None = None  # class index per head (HEAD_NAMES order)

    @property
    def name(self) -> str:
        return self.path.name


def parse_course_name(name: str) -> tuple[int, int]:
    """``0002_c1_016620005.jpg`` -> (pid 2, camera 1)."""
    match = COURSE_NAME.fullmatch(name)
    if match is None:
        raise DataError(f"{name}: not a course image name <pid 4 digits>_c<camera>_<digits>.jpg")
    return int(match[1]), int(match[2])


def parse_standard_name(name: str) -> tuple[int, int]:
    """``0002_c1s1_000451_03.jpg`` -> (pid 2, camera 1); junk images have pid -1, distractors 0."""
    match = STANDARD_NAME.fullmatch(name)
    if match is None:
        raise DataError(f"{name}: not a Market-1501 image name <pid>_c<cam>s<seq>_<frame>_<box>.jpg")
    return int(match[1]), int(match[2])


def parse_market_name(name: str) -> tuple[int, int] | None:
    """(pid, camera) of a Market-1501 or course file name (the base name of ``name``), else None: the one parser
    for images of unknown layout (gallery cameras, identities of search results)."""
    name = Path(name).name
    match = STANDARD_NAME.fullmatch(name) or COURSE_NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


def list_images(folder: str | Path, *, subfolders: bool) -> list[Path]:
    """The one lister of image files: those of ``folder`` (and of every sub-folder below it with ``subfolders``),
    hidden files and folders skipped, sorted by their path relative to ``folder``; a clear error if it is missing
    or holds none. Every command that reads a folder of images lists it here, so a folder gives one answer."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    candidates = folder.rglob("*") if subfolders else folder.iterdir()
    files = sorted((p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                        + (" or below" if subfolders else ""))
    return files


def read_annotations_csv(path: Path) -> pd.DataFrame:
    """Read and validate ``annotations_train.csv``; returns the table indexed by integer id."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    unknown = [c for c in table.columns if c not in CSV_COLUMNS]
    if missing or unknown:
        raise DataError(f"{path}: wrong header; missing columns {missing}, unknown columns {unknown}")
    table = table[list(CSV_COLUMNS)]
    for column in CSV_COLUMNS:
        values = table[column].str.strip()
        bad = ~values.str.fullmatch(r"[0-9]{1,9}")  # ASCII digits; ids beyond 9 digits are not Market ids
        allowed = {"id": None, "age": (1, 4)}.get(column, (1, 2))
        numbers = pd.to_numeric(values.where(~bad), errors="coerce")
        if allowed is not None:
            bad |= ~numbers.between(*allowed)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column '{column}' row {row + 2} has value {table[column].iloc[row]!r}; "
                + ("expected a non-negative integer id of at most 9 digits" if allowed is None else f"expected {allowed[0]}..{allowed[1]}")
            )
        table[column] = numbers.astype(np.int64)
    duplicated = table["id"][table["id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{path}: duplicate ids {duplicated[:10].tolist()}")
    return table.set_index("id", drop=False)


def read_market_attribute_mat(path: Path) -> dict[str, pd.DataFrame]:
    """Lin et al.'s ``market_attribute.mat`` -> {'train': table, 'test': table} in the course coding.

    Fields are read by name (their order differs between train and test). The .mat codes ages
    1..4 and everything else 1/2 like the course CSV, so the tables are interchangeable with it.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: attribute .mat file not found")
    mat = scipy.io.loadmat(path)
    if "market_attribute" not in mat:
        raise DataError(f"{path}: no 'market_attribute' struct (keys: {[k for k in mat if not k.startswith('__')]})")
    tables = {}
    for split in ("train", "test"):
        struct = mat["market_attribute"][split][0, 0]
        names = struct.dtype.names
        missing = [c for c in (*CSV_COLUMNS[1:], "image_index") if c not in names]
        if missing:
            raise DataError(f"{path}: split '{split}' lacks fields {missing}")
        ids = [int(np.asarray(x).ravel()[0]) for x in struct["image_index"][0, 0].ravel()]
        data = {"id": ids}
        for column in CSV_COLUMNS[1:]:
            data[column] = struct[column][0, 0].ravel().astype(np.int64)
        tables[split] = pd.DataFrame(data).set_index("id", drop=False)
    return tables


def labelled_records(images: list[Path], annotations: pd.DataFrame, parse_name, source: Path, *,
                     drop_pids: tuple[int, ...] = ()) -> list[ImageRecord]:
    """Join images (pid from the name) with per-identity labels; every image needs a row and vice versa."""
    labels = encode_annotations(annotations)
    label_rows = {int(pid): tuple(int(v) for v in row) for pid, row in zip(labels.index, labels.to_numpy())}
    records, unlabelled = [], []
    for path in images:
        pid, camid = parse_name(path.name)
        if pid in drop_pids:
            continue
        if pid not in label_rows:
            unlabelled.append(path.name)
            continue
        records.append(ImageRecord(path, pid, camid, label_rows[pid]))
    if unlabelled:
        raise DataError(f"{source}: no annotation row for the identity of {len(unlabelled)} images, e.g. {unlabelled[:5]}")
    seen = {r.pid for r in records}
    no_images = sorted(set(label_rows) - seen)
    if no_images:
        raise DataError(f"{source}: annotation rows with no images for ids {no_images[:10]}")
    return records


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes: identifies an image whatever its name (copies, renames, own-copy exclusion)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def unlabelled_records(folder: Path, subfolders: bool = False) -> list[ImageRecord]:
    return [ImageRecord(path, -1, -1) for path in list_images(folder, subfolders=subfolders)]


def image_paths(path: str | Path, *, subfolders: bool) -> tuple[Path, list[Path]]:
    """(folder, image files) of one image file (its folder, [it]) or of a folder (``list_images``)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)})")
        return path.parent, [path]
    if not path.exists():
        raise DataError(f"{path}: image or folder not found")
    return path, list_images(path, subfolders=subfolders)


def image_records(path: str | Path, subfolders: bool = False) -> list[ImageRecord]:
    """Unlabelled records of one image file, or of every image in a folder (and below, with ``subfolders``)."""
    return [ImageRecord(p, -1, -1) for p in image_paths(path, subfolders=subfolders)[1]]


def warn_if_several_colours(annotations: pd.DataFrame, source: Path) -> None:
    """Rows with several colours set are encoded as multicolour (see attributes.py); say so once."""
    for body_part, columns in (("upper-body", UPPER_COLOURS), ("lower-body", LOWER_COLOURS)):
        several = int(((annotations[list(columns)] == 2).sum(axis=1) > 1).sum())
        if several:
            warnings.warn(f"{source}: {several} rows set several {body_part} colours; encoded as multicolour", stacklevel=2)


__all__ = [
    "file_digest",
    "image_paths",
    "image_records",
    "BINARY_COLUMNS",
    "DataError",
    "ImageRecord",
    "labelled_records",
    "list_images",
    "parse_course_name",
    "parse_market_name",
    "parse_standard_name",
    "read_annotations_csv",
    "read_market_attribute_mat",
    "unlabelled_records",
]
