"""Property tests (hypothesis) for the parsing layer: image names, the annotation CSV, the label coding.

Properties:
* generated valid course / Market-1501 names parse back to the pid and camera they were built from
  (pid -1 = junk and 0000 = distractor included);
* any text either parses to the values a strict reading of the documented format gives, or raises
  DataError naming the text: never another exception type, never a silently different pid/camera;
* generated valid annotation tables written as CSV (optionally with a BOM, CRLF line ends, padded
  cells, zero-padded ids, permuted columns) read back equal; a single corrupted cell (out of range,
  not a number, a path trick) raises DataError naming the file, the column and the row;
* labels -> course table -> labels is the identity; table -> labels -> table is the identity for rows
  with at most one colour set and gives "no colour set" (multicolour) for rows with several.

The known deviations from the documented formats found while writing these tests are pinned by the
regression tests at the end for inputs that once slipped through (trailing newline, non-ASCII digits,
ids beyond 9 digits).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from src.data.attributes import (
    BINARY_COLUMNS,
    CSV_COLUMNS,
    HEADS,
    LOWER_COLOURS,
    UPPER_COLOURS,
    decode_annotations,
    encode_annotations,
)
from src.data.records import DataError, parse_course_name, parse_standard_name, read_annotations_csv

SETTINGS = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ---- image names ----

# Strict readings of the documented formats (ASCII digits only, the whole string): the oracles.
STRICT_COURSE = re.compile(r"([0-9]{4})_c([0-9])_[0-9]+\.(?:jpe?g|png)", re.IGNORECASE | re.ASCII)
STRICT_STANDARD = re.compile(r"(-1|[0-9]{4})_c([0-9])s[0-9]_[0-9]{6}_[0-9]{2}\.(?:jpe?g|png)", re.IGNORECASE | re.ASCII)


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*[st.sampled_from(sorted({c.lower(), c.upper()})) for c in word]).map("".join)


extensions = st.sampled_from(["jpg", "jpeg", "png"]).flatmap(any_case)
pids4 = st.integers(0, 9999).map(lambda pid: f"{pid:04d}")
cameras = st.integers(0, 9)
ascii_digits = st.text(alphabet="0123456789", min_size=1, max_size=12)


@st.composite
def course_names(draw) -> tuple[str, int, int]:
    pid, cam = draw(pids4), draw(cameras)
    return f"{pid}_c{cam}_{draw(ascii_digits)}.{draw(extensions)}", int(pid), cam


@st.composite
def standard_names(draw) -> tuple[str, int, int]:
    pid, cam = draw(st.one_of(st.just("-1"), st.just("0000"), pids4)), draw(cameras)
    seq, frame, box = draw(st.integers(0, 9)), draw(st.integers(0, 999_999)), draw(st.integers(0, 99))
    return f"{pid}_c{cam}s{seq}_{frame:06d}_{box:02d}.{draw(extensions)}", int(pid), cam


@given(course_names())
@example(("0002_c1_016620005.jpg", 2, 1))  # the docstring's example
@example(("0000_c6_1.JPEG", 0, 6))
@SETTINGS
def test_course_names_round_trip(case):
    name, pid, cam = case
    assert parse_course_name(name) == (pid, cam)


@given(standard_names())
@example(("0002_c1s1_000451_03.jpg", 2, 1))  # the docstring's example
@example(("-1_c3s2_012345_00.jpg", -1, 3))  # junk
@example(("0000_c6s4_999999_99.PNG", 0, 6))  # distractor
@SETTINGS
def test_standard_names_round_trip(case):
    name, pid, cam = case
    assert parse_standard_name(name) == (pid, cam)


@st.composite
def mutated(draw, names: st.SearchStrategy) -> str:
    """A valid name with one character inserted, deleted or replaced (near misses of the format)."""
    name = draw(names)[0]
    position = draw(st.one_of(st.integers(0, len(name)), st.sampled_from([0, len(name) - 1, len(name)])))
    tricky = "0123456789_.cs-jJpP /\\\n\t\u0660\u0661\uff11"  # incl. Arabic-Indic and full-width digits
    char = draw(st.one_of(st.sampled_from(tricky), st.characters()))
    how = draw(st.sampled_from(["insert", "delete", "replace"]))
    if how == "insert":
        return name[:position] + char + name[position:]
    if how == "delete":
        return name[:position] + name[position + 1:]
    return name[:position] + char + name[position + 1:]


def check_parser(parse, strict: re.Pattern, name: str) -> None:
    match = strict.fullmatch(name)
    try:
        result = parse(name)
    except DataError as err:
        assert match is None, f"{name!r} follows the format but was rejected: {err}"
        assert name in str(err)
        return
    # any other exception type propagates and fails the test
    assert match is not None, f"{name!r} does not follow the format but parsed as {result}"
    assert result == (int(match[1]), int(match[2]))


NEAR_MISSES = [
    "002_c1_1.jpg", "00002_c1_1.jpg", "-1_c1_1.jpg", "0002_c10_1.jpg", "0002_c_1.jpg", "0002_c1_.jpg", "0002_c1_1.gif",
    "0002_c1_1.jpg.bak", "0002_c1_1jpg", "0002c1_1.jpg", "x0002_c1_1.jpg", " 0002_c1_1.jpg", "0002_c1_1.jpg ",
    "1_c1s1_000451_03.jpg", "-2_c1s1_000451_03.jpg", "-01_c1s1_000451_03.jpg", "00002_c1s1_000451_03.jpg",
    "0002_c1s12_000451_03.jpg", "0002_c1s1_00451_03.jpg", "0002_c1s1_000451_3.jpg", "0002_c1s1_000451_03.bmp",
    "../0002_c1_1.jpg", "0002_c1s1_000451_03.jpg/x", "",
]


def with_examples(test):
    for name in NEAR_MISSES:
        test = example(name)(test)
    return test


@given(st.one_of(st.text(max_size=40), course_names().map(lambda c: c[0]), mutated(course_names()), mutated(standard_names())))
@with_examples
@SETTINGS
def test_course_parser_accepts_exactly_the_format(name):
    check_parser(parse_course_name, STRICT_COURSE, name)


@given(st.one_of(st.text(max_size=40), standard_names().map(lambda c: c[0]), mutated(standard_names()), mutated(course_names())))
@with_examples
@SETTINGS
def test_standard_parser_accepts_exactly_the_format(name):
    check_parser(parse_standard_name, STRICT_STANDARD, name)


# ---- annotations_train.csv ----

MAX_ID = 999_999_999  # ids have at most 9 digits
RANGES = {"age": (1, 4), **{c: (1, 2) for c in CSV_COLUMNS if c not in ("id", "age")}}


@st.composite
def annotation_tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, MAX_ID) | st.integers(0, 1600), min_size=n, max_size=n, unique=True))
    data = {"id": ids}
    for column, (low, high) in RANGES.items():
        data[column] = draw(st.lists(st.integers(low, high), min_size=n, max_size=n))
    return pd.DataFrame(data, columns=list(CSV_COLUMNS)).astype(np.int64)


@st.composite
def csv_layouts(draw) -> dict:
    return {
        "bom": draw(st.booleans()),
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "pad": draw(st.sampled_from(["", " ", "  "])),  # spaces around every cell
        "zero_pad_ids": draw(st.booleans()),
        "final_newline": draw(st.booleans()),
        "columns": draw(st.permutations(CSV_COLUMNS)),
    }


def csv_cells(table: pd.DataFrame, layout: dict) -> tuple[list[str], list[list[str]]]:
    columns = list(layout["columns"])
    rows = []
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            value = int(row[column])
            text = f"{value:04d}" if column == "id" and layout["zero_pad_ids"] else str(value)
            cells.append(f"{layout['pad']}{text}{layout['pad']}")
        rows.append(cells)
    return columns, rows


def write_csv_file(path: Path, header: list[str], rows: list[list[str]], layout: dict) -> None:
    newline = layout["newline"]
    text = newline.join(",".join(cells) for cells in [header, *rows]) + (newline if layout["final_newline"] else "")
    path.write_bytes((b"\xef\xbb\xbf" if layout["bom"] else b"") + text.encode("utf-8"))


def expected_frame(table: pd.DataFrame) -> pd.DataFrame:
    return table[list(CSV_COLUMNS)].astype(np.int64).set_index("id", drop=False)


@given(annotation_tables(), csv_layouts())
@SETTINGS
def test_valid_csv_reads_back_equal(table, layout):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotations_train.csv"
        write_csv_file(path, *csv_cells(table, layout), layout)
        result = read_annotations_csv(path)
    pd.testing.assert_frame_equal(result, expected_frame(table))


# Corrupted cell values. Separators and quotes would change the table's shape, not one cell.
cell_text = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=',"'), max_size=12)
path_tricks = st.sampled_from(["../x", "../../etc/passwd", "/etc/passwd", "..\\x", "~/x", "./1", "1/..", "file:1", "%2e%2e/x"])
non_numbers = st.sampled_from(["", " ", "1.0", "2.", "1e0", "+1", "0x1", "1_0", "nan", "NA", "None", "True", "yes", "1 2", "١"])


def out_of_range(column: str) -> st.SearchStrategy[str]:
    low, high = RANGES.get(column, (0, MAX_ID))
    below = st.one_of(st.just(low - 1), st.integers(-(10**6), low - 1)).map(str)
    above = st.one_of(st.sampled_from([high + 1, high + 2]), st.integers(high + 1, 10**20)).map(str)
    padded = st.integers(high + 1, max(high + 1, 99)).map(lambda v: f"0{v}")
    return st.one_of(below, above, padded)


def is_valid_cell(column: str, text: str) -> bool:
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        return False
    low, high = RANGES.get(column, (0, MAX_ID))
    return low <= int(text) <= high


@st.composite
def corruptions(draw) -> tuple[str, str]:
    column = draw(st.sampled_from(CSV_COLUMNS))
    value = draw(st.one_of(out_of_range(column), non_numbers, path_tricks, cell_text))
    assume(not is_valid_cell(column, value))
    return column, value


@given(annotation_tables(), csv_layouts(), corruptions(), st.data())
@SETTINGS
def test_one_corrupted_cell_is_named(table, layout, corruption, data):
    column, value = corruption
    header, rows = csv_cells(table, layout)
    row = data.draw(st.integers(0, len(rows) - 1), label="row")
    rows[row][header.index(column)] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotations_train.csv"
        write_csv_file(path, header, rows, layout)
        with pytest.raises(DataError) as err:
            read_annotations_csv(path)
    message = str(err.value)
    assert str(path) in message
    assert f"column '{column}'" in message
    assert f"row {row + 2}" in message  # 1-based, after the header line


def test_boundary_corruptions_of_every_column_are_named(tmp_path):
    """Deterministic companion of the property: each column's first invalid values, in every row position."""
    table = pd.DataFrame({c: [3, 7, 11] if c == "id" else [1, 2, 1] for c in CSV_COLUMNS})
    layout = {"bom": True, "newline": "\r\n", "pad": "", "zero_pad_ids": False, "final_newline": True,
              "columns": CSV_COLUMNS}
    path = tmp_path / "annotations_train.csv"
    for column in CSV_COLUMNS:
        low, high = RANGES.get(column, (0, None))
        values = [str(low - 1), "../x", "1.0", "", "x"] + ([str(high + 1), f"0{high + 1}"] if high else [])
        for row, value in enumerate(values):
            row %= len(table)
            header, rows = csv_cells(table, layout)
            rows[row][header.index(column)] = value
            write_csv_file(path, header, rows, layout)
            with pytest.raises(DataError) as err:
                read_annotations_csv(path)
            assert f"{path}: column '{column}' row {row + 2} has value {value!r}" in str(err.value)


# ---- label coding ----


@st.composite
def label_arrays(draw) -> np.ndarray:
    n = draw(st.integers(1, 20))
    columns = [draw(st.lists(st.integers(0, head.num_classes - 1), min_size=n, max_size=n)) for head in HEADS]
    return np.array(columns, dtype=np.int64).T


@given(label_arrays())
@SETTINGS
def test_labels_to_table_to_labels_is_identity(labels):
    ids = [f"{i:06d}.jpg" for i in range(len(labels))]
    table = decode_annotations(ids, labels)
    assert list(table.columns) == list(CSV_COLUMNS)
    assert table["id"].tolist() == ids
    coded = table.drop(columns="id")
    assert coded["age"].between(1, 4).all() and coded.drop(columns="age").isin([1, 2]).all().all()
    np.testing.assert_array_equal(encode_annotations(table).to_numpy(), labels)


@given(label_arrays())
@SETTINGS
def test_labels_survive_the_csv_file(labels):
    """labels -> course CSV on disk -> read_annotations_csv -> labels."""
    table = decode_annotations(list(range(len(labels))), labels)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "annotations_train.csv"
        table.to_csv(path, index=False)
        read = read_annotations_csv(path)
    np.testing.assert_array_equal(encode_annotations(read).to_numpy(), labels)


@given(annotation_tables())
@SETTINGS
def test_table_to_labels_to_table(table):
    labels = encode_annotations(table)
    back = decode_annotations(table["id"].tolist(), labels.to_numpy())
    expected = table.copy()
    for columns in (UPPER_COLOURS, LOWER_COLOURS):
        several = (table[list(columns)] == 2).sum(axis=1) > 1
        expected.loc[several, list(columns)] = 1  # several colours = multicolour = no colour set
        n_set = (table[list(columns)] == 2).sum(axis=1).to_numpy()
        head = labels["upcolor" if columns is UPPER_COLOURS else "downcolor"].to_numpy()
        assert (head[n_set != 1] == len(columns)).all()  # none or several: the multicolour class
        single = n_set == 1
        assert (head[single] == table[list(columns)].to_numpy()[single].argmax(axis=1)).all()
    for name in ("age", *BINARY_COLUMNS):
        assert (labels[name].to_numpy() == table[name].to_numpy() - 1).all()
    pd.testing.assert_frame_equal(back.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


@given(st.integers(0, 5), st.integers(0, 30).filter(lambda k: k != len(HEADS)))
@SETTINGS
def test_decode_rejects_wrong_shapes(n, width):
    with pytest.raises(ValueError):
        decode_annotations(list(range(n)), np.zeros((n, width), dtype=np.int64))


# ---- inputs that once slipped through ----


@pytest.mark.parametrize("parse, name", [(parse_course_name, "0002_c1_016620005.jpg\n"),
                                         (parse_standard_name, "0002_c1s1_000451_03.jpg\n")])
def test_name_with_trailing_newline_is_rejected(parse, name):
    with pytest.raises(DataError):
        parse(name)


@pytest.mark.parametrize("parse, name", [(parse_course_name, "\u0660\u0660\u0660\u0662_c1_1.jpg"),
                                         (parse_standard_name, "0002_c\u0661s1_000451_03.jpg")])
def test_name_with_non_ascii_digits_is_rejected(parse, name):
    with pytest.raises(DataError):
        parse(name)


@pytest.mark.parametrize("bad_id", ["18446744073709551615", "9223372036854775808", "1" * 400, "\u0663"])
def test_id_not_representable_is_a_data_error(tmp_path, bad_id):
    path = tmp_path / "annotations_train.csv"
    path.write_text(",".join(CSV_COLUMNS) + "\n" + ",".join([bad_id, *["1"] * (len(CSV_COLUMNS) - 1)]) + "\n")
    with pytest.raises(DataError, match="column 'id'"):
        read_annotations_csv(path)
