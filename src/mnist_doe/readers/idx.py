"""Read IDX files (`*-idx3-ubyte[.gz]`, `*-idx1-ubyte[.gz]`) and write them as a Kaggle CSV pair.

`python -m mnist_doe.readers.idx /usr/share/datasets/fashion-mnist data/external` writes
`data/external/train.csv` and `test.csv` in Fashion-MNIST's Kaggle layout
(`label,pixel1..pixel784`, labels in both files) from the four IDX files of a folder.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from ..common import files
from ..common.errors import DataError, run_stage

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
PARTS = {"train": "train", "test": "t10k"}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _read(path: Path, magic_expected: int, what: str, limit: int | None) -> tuple[list[int], bytes]:
    """(shape, data bytes) of an IDX file holding `what`, at most `limit` items."""
    ndim = 3 if magic_expected == IMAGES_MAGIC else 1
    with _open(path) as handle:
        header = handle.read(4 * (ndim + 1))
        if len(header) < 4 * (ndim + 1):
            raise DataError(f"{path}: too short for an IDX{ndim} header")
        magic, *shape = (int(v) for v in np.frombuffer(header, dtype=">u4"))
        if magic != magic_expected:
            raise DataError(f"{path}: not an IDX{ndim} {what} file (magic {magic}, expected {magic_expected})")
        shape[0] = shape[0] if limit is None else min(shape[0], limit)
        size = int(np.prod(shape))
        raw = handle.read(size)
    if len(raw) != size:
        raise DataError(f"{path}: truncated: {len(raw)} of {size} bytes for {shape[0]} {what}s")
    return shape, raw


def read_images(path: str | Path, limit: int | None = None) -> np.ndarray:
    """uint8 images (N, rows, cols) of an IDX3 file, at most `limit` of them."""
    shape, raw = _read(Path(path), IMAGES_MAGIC, "image", limit)
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def read_labels(path: str | Path, limit: int | None = None) -> np.ndarray:
    """uint8 labels (N,) of an IDX1 file, at most `limit` of them."""
    _, raw = _read(Path(path), LABELS_MAGIC, "label", limit)
    return np.frombuffer(raw, dtype=np.uint8)


def find(folder: Path, part: str, kind: str) -> Path:
    """The IDX file of `part` (train / t10k) and `kind` (images / labels) in `folder`."""
    ndim = 3 if kind == "images" else 1
    for name in (f"{part}-{kind}-idx{ndim}-ubyte.gz", f"{part}-{kind}-idx{ndim}-ubyte", f"{part}-{kind}.idx{ndim}-ubyte"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {part}-{kind}-idx{ndim}-ubyte[.gz] file")


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    flat = images.reshape(len(images), -1)
    frame = pd.DataFrame(flat, columns=[f"pixel{i + 1}" for i in range(flat.shape[1])])
    frame.insert(0, "label", labels)
    with files.atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_doe.readers.idx", description=__doc__)
    parser.add_argument("idx_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per file")
    args = parser.parse_args(argv)
    for role, part in PARTS.items():
        images = read_images(find(args.idx_dir, part, "images"), args.limit)
        labels = read_labels(find(args.idx_dir, part, "labels"), args.limit)
        if len(images) != len(labels):
            raise DataError(f"{args.idx_dir}: {len(images)} {part} images but {len(labels)} labels")
        write_csv(args.out_dir / f"{role}.csv", images, labels)
        print(f"idx: {role}.csv: {len(images)} images of {images.shape[1]}x{images.shape[2]}")


if __name__ == "__main__":
    run_stage("idx", main)
