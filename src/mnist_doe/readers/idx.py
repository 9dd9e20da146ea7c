"""Read IDX files (`*-idx3-ubyte[.gz]`, `*-idx1-ubyte[.gz]`) and write them as a Kaggle CSV pair.

`python -m mnist_doe.readers.idx /usr/share/datasets/fashion-mnist data/external` writes
`data/external/train.csv` and `test.csv` in Fashion-MNIST's Kaggle layout
(`label,pixel1..pixel784`, labels in both files) from the four IDX files of a folder.
"""

from __future__ import annotations

import argparse
import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..common import files
from ..common.errors import DataError, run_stage
from ..common.words import plural

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
PARTS = {"train": "train", "test": "t10k"}


CHUNK = 1 << 24  # bytes read at a time: memory follows the file, not what its header claims


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _read_up_to(handle, size: int) -> bytes:
    chunks, left = [], size
    while left:
        block = handle.read(min(left, CHUNK))
        if not block:
            break
        chunks.append(block)
        left -= len(block)
    return b"".join(chunks)


def _read(path: Path, magic_expected: int, what: str, limit: int | None) -> tuple[list[int], bytes]:
    """(shape, data bytes) of an IDX file holding `what`, at most `limit` items.

    The size the header claims is checked against the bytes the file holds (read in
    chunks for a gzip file), so a damaged header is one line, never a MemoryError.
    """
    ndim = 3 if magic_expected == IMAGES_MAGIC else 1
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    compressed = _is_gzip(path)
    try:
        with (gzip.open(path, "rb") if compressed else path.open("rb")) as handle:
            header = handle.read(4 * (ndim + 1))
            if len(header) < 4 * (ndim + 1):
                raise DataError(f"{path}: too short for an IDX{ndim} header")
            magic, *shape = (int(v) for v in np.frombuffer(header, dtype=">u4"))
            if magic != magic_expected:
                raise DataError(f"{path}: not an IDX{ndim} {what} file (magic {magic}, expected {magic_expected})")
            claimed = shape[0]
            shape[0] = shape[0] if limit is None else min(shape[0], limit)
            size = math.prod(shape)  # Python ints: four u4 sizes overflow int64
            if not compressed and path.stat().st_size - len(header) < size:
                raw = b""
                held = path.stat().st_size - len(header)
            else:
                raw = _read_up_to(handle, size)
                held = len(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    if held < size:
        dims = f" of {shape[1]}x{shape[2]}" if ndim == 3 else ""
        wanted = f"{shape[0]:,} of them take" if shape[0] != claimed else "they take"
        raise DataError(
            f"{path}: truncated: the header claims {plural(claimed, what, grouped=True)}{dims}; "
            f"{wanted} {size:,} bytes, "
            f"the file holds {held:,}{' (decompressed)' if compressed else ''}"
        )
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
            raise DataError(
                f"{args.idx_dir}: {plural(len(images), part + ' image')} but {plural(len(labels), 'label')}"
            )
        write_csv(args.out_dir / f"{role}.csv", images, labels)
        print(f"idx: {role}.csv: {plural(len(images), 'image')} of {images.shape[1]}x{images.shape[2]}")


if __name__ == "__main__":
    run_stage("idx", main)
