"""Dataset layouts on disk -> records. A source knows its layout; datasets only load images."""

from __future__ import annotations

from pathlib import Path

from src.data.records import (
    DataError,
    ImageRecord,
    labelled_records,
    list_images,
    parse_course_name,
    parse_standard_name,
    read_annotations_csv,
    read_market_attribute_mat,
    unlabelled_records,
    warn_if_several_colours,
)

COURSE_MARKERS = ("train", "annotations_train.csv")
STANDARD_MARKERS = ("bounding_box_train", "bounding_box_test", "query")


def _check_root(root: Path, markers: tuple[str, ...], layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data.root not found")
    missing = [m for m in markers if not (root / m).exists()]
    if missing:
        found = sorted(p.name for p in root.iterdir())[:10]
        known = (
            "course layout (train/, annotations_train.csv, test/, queries/) or "
            "Market-1501 layout (bounding_box_train/, bounding_box_test/, query/)"
        )
        raise DataError(f"{root}: not a {layout} folder, missing {missing} (found {found}); known layouts: {known}")
    return root


class CourseSource:
    """The course layout: ``train/`` + ``annotations_train.csv`` (per identity), unlabelled ``test/`` and ``queries/``."""

    def __init__(self, root: str | Path):
        self.root = _check_root(Path(root), COURSE_MARKERS, "course-layout")

    def labelled(self) -> list[ImageRecord]:
        csv = self.root / "annotations_train.csv"
        annotations = read_annotations_csv(csv)
        warn_if_several_colours(annotations, csv)
        return labelled_records(list_images(self.root / "train"), annotations, parse_course_name, csv)

    def gallery(self) -> list[ImageRecord]:
        return unlabelled_records(self.root / "test")

    def queries(self) -> list[ImageRecord]:
        """The query images; none when the folder has no ``queries/`` (it is optional in this layout)."""
        return unlabelled_records(self.root / "queries") if (self.root / "queries").is_dir() else []

    def check_unlabelled(self) -> None:
        """Before training: the end-of-run predictions need ``test/`` (``queries/`` is optional)."""
        if not (self.root / "test").is_dir():
            raise DataError(f"{self.root / 'test'}: folder not found; the end-of-run predictions for the unlabelled "
                            "gallery read it (add it, or pass predict_test=false to skip them)")


class StandardSource:
    """Market-1501-v15.09.15 with Lin et al.'s attributes: pid -1 (junk) dropped, pid 0 (distractors) kept unlabelled."""

    def __init__(self, root: str | Path, attribute_mat: str | Path):
        self.root = _check_root(Path(root), STANDARD_MARKERS, "Market-1501")
        self.tables = read_market_attribute_mat(Path(attribute_mat))
        self.attribute_mat = Path(attribute_mat)

    def labelled(self) -> list[ImageRecord]:
        warn_if_several_colours(self.tables["train"], self.attribute_mat)
        return labelled_records(
            list_images(self.root / "bounding_box_train"), self.tables["train"], parse_standard_name,
            self.attribute_mat, drop_pids=(-1, 0),
        )

    def _test_records(self, folder: str) -> list[ImageRecord]:
        labelled = {r.path: r for r in labelled_records(
            [p for p in list_images(self.root / folder) if parse_standard_name(p.name)[0] > 0],
            self.tables["test"], parse_standard_name, self.attribute_mat,
        )} if folder == "bounding_box_test" else {}
        records = []
        for path in list_images(self.root / folder):
            pid, camid = parse_standard_name(path.name)
            if pid == -1:
                continue
            records.append(labelled.get(path, ImageRecord(path, pid, camid)))
        return records

    def gallery(self) -> list[ImageRecord]:
        return self._test_records("bounding_box_test")

    def check_unlabelled(self) -> None:
        """Before training: the gallery and query folders are layout markers, checked when the source is built."""

    def queries(self) -> list[ImageRecord]:
        return self._test_records("query")


class SyntheticSource(CourseSource):
    """The offline default: a generated Market-like dataset in the course layout, cached in ``root``."""

    def __init__(self, root: str | Path, **generator_options):
        from src.data.synthetic import generate_synthetic_dataset

        super().__init__(generate_synthetic_dataset(Path(root).expanduser(), **generator_options))
