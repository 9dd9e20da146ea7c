"""What a CSV file can be as users have it: gzip, zip, UTF-16, Windows-1252, very long fields;
each is read, or refused with one line naming the file (issue 18 cases 8 and 9, issue 17)."""

from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pytest
from conftest import kaggle_csv, tiny_images

from mnist_doe.common.errors import DataError
from mnist_doe.readers import csvfile

LABELS = ["Café", "Crème", "Café"]


def text_of(tmp_path, labels=LABELS):
    """A small training CSV's text (4x4 images), and its pixels."""
    pixels = tiny_images(labels)
    path = kaggle_csv(tmp_path / "plain.csv", pixels, labels, header="fashion")
    return path.read_text(encoding="utf-8"), pixels


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
def test_text_in_any_common_encoding_is_read(tmp_path, encoding):
    text, pixels = text_of(tmp_path)
    path = tmp_path / "train.csv"
    path.write_bytes(text.encode(encoding))
    read = csvfile.read_train(path)
    assert read.labels.tolist() == LABELS
    np.testing.assert_array_equal(read.pixels, pixels)
    assert read.lines.tolist() == [2, 3, 4]


def test_windows_1252_training_and_utf8_test_labels_agree(tmp_path):
    text, _ = text_of(tmp_path)
    (tmp_path / "train.csv").write_bytes(text.encode("cp1252"))
    train = csvfile.read_train(tmp_path / "train.csv")
    test = csvfile.read_test(kaggle_csv(tmp_path / "test.csv", tiny_images([0]), ["Crème"], header="fashion"), 16, train)
    assert train.encoding == "Windows-1252" and test.encoding == "utf-8"
    assert set(test.labels) <= set(train.labels)


def test_binary_file_is_refused_by_name(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"label,a\n\x00\x01\x02\x03\xff\x00\x10\x00\x00\x00")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: holds NUL bytes: a binary file, not CSV text"


def test_gzip_file_is_read(tmp_path):
    text, pixels = text_of(tmp_path)
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    read = csvfile.read_train(path)
    np.testing.assert_array_equal(read.pixels, pixels)
    assert read.labels.tolist() == LABELS


def test_damaged_gzip_file_is_one_line(tmp_path):
    text, _ = text_of(tmp_path)
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(text.encode())[:-12])
    with pytest.raises(DataError, match=rf"^{path}: a damaged gzip file \("):
        csvfile.read_train(path)


def test_zip_holding_one_csv_is_read(tmp_path):
    text, pixels = text_of(tmp_path)
    path = tmp_path / "train.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("folder/train.csv", text)
        archive.writestr("__MACOSX/folder/._train.csv", b"\x00\x05\x16\x07")
        archive.writestr("README.txt", "not data")
    read = csvfile.read_train(path)
    np.testing.assert_array_equal(read.pixels, pixels)
    assert read.path == f"{path}:folder/train.csv"


def test_zip_holding_no_csv_names_what_it_holds(tmp_path):
    path = tmp_path / "train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train-images-idx3-ubyte", b"\x00\x00\x08\x03")
        archive.writestr("notes.txt", "x")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: a zip archive holding no CSV file; it holds train-images-idx3-ubyte, notes.txt"


def test_zip_holding_several_csvs_names_them(tmp_path):
    path = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            archive.writestr(name, "label,a\n1,0\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: a zip archive holding 3 CSV files (train.csv, test.csv, sample_submission.csv); "
        "one is needed here (a Kaggle competition zip goes in data.kaggle_zip)"
    )


def test_excel_workbook_is_refused_by_name(tmp_path):
    path = tmp_path / "train.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<x/>")
        archive.writestr("xl/workbook.xml", "<x/>")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: an Excel workbook (.xlsx), not CSV; save it as CSV"


@pytest.mark.parametrize("separator, what", [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(tmp_path, separator, what):
    path = tmp_path / "train.csv"
    path.write_text(separator.join(["label", "a", "b", "c", "d"]) + "\n" + separator.join("10000") + "\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: fields are separated by {what}, not commas; save the file as comma-separated CSV"


def test_quoted_field_beyond_the_csv_modules_limit_is_one_line(tmp_path):
    # 256x256 images: a line of 65,537 fields; an unclosed quote makes one field of 262,143 characters
    path = tmp_path / "train.csv"
    pixels = ",".join(["100"] * 65536)
    path.write_text(f'1,{pixels}\n2,"{pixels}\n')
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path} line 2: 2 fields, expected 65537"


def test_long_quoted_field_is_read(tmp_path):
    label = "x" * 140_000
    path = tmp_path / "train.csv"
    path.write_text(f'"{label}",1,2,3,4\nB,5,6,7,8\n')
    read = csvfile.read_train(path)
    assert read.labels.tolist() == [label, "B"] and read.pixels.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def kaggle_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_kaggle_zip_members_are_found(tmp_path):
    path = kaggle_zip(tmp_path / "d.zip", {"train.csv": "a", "test.csv": "b", "sample_submission.csv": "c"})
    parts = csvfile.kaggle_zip(path)
    assert {role: source.member for role, source in parts.items()} == {
        "train": "train.csv", "test": "test.csv", "sample": "sample_submission.csv",
    }
    fashion = kaggle_zip(
        tmp_path / "archive.zip",
        {"fashion-mnist_train.csv": "a", "fashion-mnist_test.csv": "b", "t10k-images-idx3-ubyte": "c",
         "sign/fashion-mnist_train.csv": "a"},  # a copy of one file counts once
    )
    parts = csvfile.kaggle_zip(fashion)
    assert (parts["train"].member, parts["test"].member, parts["sample"]) == (
        "fashion-mnist_train.csv", "fashion-mnist_test.csv", None,
    )


def test_kaggle_zip_without_a_test_csv_names_what_it_holds(tmp_path):
    path = kaggle_zip(tmp_path / "d.zip", {"train.csv": "a", "notes.txt": "b"})
    with pytest.raises(DataError) as err:
        csvfile.kaggle_zip(path)
    assert str(err.value) == f"{path}: holds no test CSV (such as test.csv); it holds train.csv, notes.txt"


def test_kaggle_zip_with_two_training_csvs_names_them(tmp_path):
    path = kaggle_zip(tmp_path / "d.zip", {"a_train.csv": "a", "b_train.csv": "b", "test.csv": "c"})
    with pytest.raises(DataError) as err:
        csvfile.kaggle_zip(path)
    assert str(err.value) == f"{path}: holds 2 training CSV files (a_train.csv, b_train.csv); expected one"


def test_kaggle_zip_that_is_not_a_zip(tmp_path):
    path = tmp_path / "d.zip"
    path.write_text("label,a\n")
    with pytest.raises(DataError) as err:
        csvfile.kaggle_zip(path)
    assert str(err.value) == f"{path}: data.kaggle_zip must be a zip archive (as Kaggle downloads it)"
