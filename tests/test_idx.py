"""IDX reading and conversion to a Kaggle CSV pair, on IDX files the test writes."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from mnist_doe.readers import idx
from mnist_doe.common.errors import DataError


def write_idx(folder, part: str, images: np.ndarray, labels: np.ndarray) -> None:
    n, rows, cols = images.shape
    with gzip.open(folder / f"{part}-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(np.array([2051, n, rows, cols], ">u4").tobytes() + images.tobytes())
    with gzip.open(folder / f"{part}-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(np.array([2049, n], ">u4").tobytes() + labels.tobytes())


@pytest.fixture()
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path, "train", rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12, dtype=np.uint8) % 10)
    write_idx(tmp_path, "t10k", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5, dtype=np.uint8))
    return tmp_path


def test_conversion_keeps_every_pixel_and_label(idx_dir, tmp_path):
    out = tmp_path / "csv"
    idx.main([str(idx_dir), str(out)])
    train = pd.read_csv(out / "train.csv")
    assert list(train.columns[:3]) == ["label", "pixel1", "pixel2"] and train.shape == (12, 785)
    images = idx.read_images(idx_dir / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(train.iloc[:, 1:].to_numpy(), images.reshape(12, -1))
    np.testing.assert_array_equal(train["label"], np.arange(12) % 10)
    test = pd.read_csv(out / "test.csv")
    assert test.shape == (5, 785) and test["label"].tolist() == [0, 1, 2, 3, 4]


def test_limit_reads_the_first_images_only(idx_dir):
    assert idx.read_images(idx_dir / "train-images-idx3-ubyte.gz", limit=3).shape == (3, 28, 28)
    assert idx.read_labels(idx_dir / "train-labels-idx1-ubyte.gz", limit=3).tolist() == [0, 1, 2]


def test_a_label_file_given_as_images_is_refused(idx_dir):
    with pytest.raises(DataError, match="not an IDX3 image file \\(magic 2049, expected 2051\\)"):
        idx.read_images(idx_dir / "train-labels-idx1-ubyte.gz")


def test_a_truncated_file_is_refused(idx_dir, tmp_path):
    raw = gzip.open(idx_dir / "t10k-images-idx3-ubyte.gz").read()
    short = tmp_path / "short-images-idx3-ubyte"
    short.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        idx.read_images(short)


def test_a_missing_part_is_named(tmp_path):
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        idx.main([str(tmp_path), str(tmp_path / "out")])


@pytest.mark.parametrize("compressed", [False, True])
def test_a_header_claiming_huge_sizes_is_one_line(tmp_path, compressed):
    # a billion 28x28 images claimed, 5 held: once a MemoryError
    data = np.array([2051, 10**9, 28, 28], ">u4").tobytes() + bytes(5 * 784)
    path = tmp_path / ("big-images-idx3-ubyte" + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(DataError) as err:
        idx.read_images(path)
    assert str(err.value) == (
        f"{path}: truncated: the header claims 1,000,000,000 images of 28x28; they take 784,000,000,000 bytes, "
        f"the file holds 3,920{' (decompressed)' if compressed else ''}"
    )


def test_sizes_beyond_int64_are_not_wrapped(tmp_path):
    path = tmp_path / "odd-images-idx3-ubyte"
    path.write_bytes(np.array([2051, 2**32 - 1, 2**32 - 1, 2**32 - 1], ">u4").tobytes() + bytes(100))
    with pytest.raises(DataError, match=r"claims 4,294,967,295 images of 4294967295x4294967295; .* the file holds 100$"):
        idx.read_images(path)


def test_limit_names_the_images_it_wanted(tmp_path):
    path = tmp_path / "few-images-idx3-ubyte"
    path.write_bytes(np.array([2051, 50, 2, 2], ">u4").tobytes() + bytes(8))
    with pytest.raises(DataError) as err:
        idx.read_images(path, limit=3)
    assert str(err.value) == f"{path}: truncated: the header claims 50 images of 2x2; 3 of them take 12 bytes, the file holds 8"


def test_a_damaged_gzip_file_is_one_line(idx_dir, tmp_path):
    raw = (idx_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(raw[:12] + b"\xff" * (len(raw) - 12))
    with pytest.raises(DataError, match=rf"^{path}: cannot be read \("):
        idx.read_labels(path)
