"""Bad input gets a clear error naming the file and the problem (or a warning when asked to skip): annotation CSVs,
records without annotations, and the datamodule's set-up (image decoding: tests/data/test_images.py; data roots and
layouts: tests/data/test_sources.py)."""

from __future__ import annotations

import shutil

import pytest

from src.data.datamodule import MarketDataModule
from src.data.records import DataError, read_annotations_csv
from src.data.sources import CourseSource
from tests.data.conftest import make_course, write_image


def test_datamodule_reports_bad_root_at_setup(tmp_path):
    from src.data.sources import CourseSource as factory

    module = MarketDataModule(str(tmp_path / "absent"), factory, num_workers=0)
    with pytest.raises(DataError, match="absent"):
        module.setup("fit")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda text: text.replace(",downbrown", ""), r"missing columns \['downbrown'\]"),
        (lambda text: text.replace("downbrown", "downbrown,colour"), r"unknown columns \['colour'\]"),
        (lambda text: text.replace("\n1,2,", "\n1,7,", 1), r"'age' row 2 has value '7'; expected 1..4"),
        (lambda text: text.replace("\n2,2,1", "\n2,2,3", 1), r"'backpack' row 3 has value '3'; expected 1..2"),
        (lambda text: text.replace("\n2,", "\n1,", 1), r"duplicate ids \[1\]"),
        (lambda text: text.replace("\n1,2,", "\n../x,2,", 1), r"'id' row 2 has value '../x'"),
    ],
)
def test_bad_csv_is_named(tmp_path, mutate, message):
    root = make_course(tmp_path)
    csv = root / "annotations_train.csv"
    csv.write_text(mutate(csv.read_text()))
    with pytest.raises(DataError, match=message) as error:
        read_annotations_csv(csv)
    assert str(csv) in str(error.value)


def test_csv_with_bom_and_crlf_is_read(tmp_path):
    root = make_course(tmp_path)
    csv = root / "annotations_train.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes().replace(b"\n", b"\r\n"))
    table = read_annotations_csv(csv)
    assert table["id"].tolist() == [1, 2, 3, 4]
    assert table["upred"].tolist() == [2, 2, 2, 2]


def test_image_without_annotation_row(tmp_path):
    root = make_course(tmp_path)
    write_image(root / "train" / "0099_c1_000000001.jpg")
    with pytest.raises(DataError, match=r"annotations_train.csv: no annotation row.*0099_c1_000000001.jpg"):
        CourseSource(root).labelled()


def test_annotation_row_without_images(tmp_path):
    root = make_course(tmp_path)
    for path in (root / "train").glob("0003_*"):
        path.unlink()
    with pytest.raises(DataError, match=r"annotation rows with no images for ids \[3\]"):
        CourseSource(root).labelled()


def test_badly_named_training_image(tmp_path):
    root = make_course(tmp_path)
    write_image(root / "train" / "person.jpg")
    with pytest.raises(DataError, match="person.jpg: not a course image name"):
        CourseSource(root).labelled()


def test_corrupt_image_fails_setup_or_is_skipped_with_a_warning(tmp_path):
    from src.data.sources import CourseSource as factory

    root = make_course(tmp_path)
    broken = root / "train" / "0002_c2_000000001.jpg"
    broken.write_bytes(b"")
    module = MarketDataModule(str(root), factory, num_workers=0, val_ratio=0.25)
    with pytest.raises(DataError, match="0002_c2_000000001.jpg: empty file"):
        module.setup("fit")
    module = MarketDataModule(str(root), factory, num_workers=0, val_ratio=0.25, skip_corrupt=True)
    with pytest.warns(UserWarning, match="0002_c2_000000001.jpg"):
        module.setup("fit")
    assert len(module.train_records) + len(module.val_records) == 11


def test_course_folder_without_test_fails_before_training(tmp_path, make_cfg):
    from src.train import train

    root = make_course(tmp_path / "course")
    shutil.rmtree(root / "test", ignore_errors=True)
    cfg = make_cfg(["task=attributes", "data=market_course", f"data.root={root}", "data.num_workers=0",
                    "model.net.backbone.pretrained=false", "trainer.max_epochs=1"])
    with pytest.raises(DataError, match=r"/test: folder not found.*predict_test=false"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # no run folder, no epoch trained


def test_limited_training_batches_decode_lazily(tmp_path):
    import pytorch_lightning as pl

    root = make_course(tmp_path / "course")
    for limit, lazy in ((3, True), (0.5, True), (1.0, False)):
        module = MarketDataModule(str(root), source=CourseSource, num_workers=0, val_ratio=0.5)
        module.trainer = pl.Trainer(limit_train_batches=limit, logger=False, enable_progress_bar=False)
        module.setup("fit")
        assert (module.train_set.cache is None) == lazy, limit
        assert module.val_set.cache is not None
        assert tuple(module.train_set[0]["image"].shape[-2:]) == (128, 64)  # decoded on demand
