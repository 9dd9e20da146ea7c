"""split stage: a stratified, seeded train / validation split of the clean training rows."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from . import files, params, paths
from .errors import DataError, run_stage


def holdout(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train, val) row indices, stratified on `y`."""
    counts = np.bincount(y)
    rare = np.flatnonzero((counts > 0) & (counts < 2))
    if rare.size:
        raise DataError(
            f"{paths.CLEAN_TRAIN}: class index {int(rare[0])} has {int(counts[rare[0]])} row; "
            "a stratified split needs at least 2 rows per class"
        )
    n_val = int(round(len(y) * val_fraction))
    n_classes = int(np.count_nonzero(counts))
    if n_val < n_classes or len(y) - n_val < n_classes:
        raise DataError(
            f"{paths.CLEAN_TRAIN}: {len(y)} rows cannot be split with split.val_fraction="
            f"{val_fraction} so that each of the {n_classes} classes is in both parts"
        )
    train, val = train_test_split(
        np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed
    )
    return np.sort(train), np.sort(val)


def main() -> None:
    p = params.load()
    y = files.load_npz(paths.CLEAN_TRAIN)["y"]
    train, val = holdout(y, p.split.val_fraction, p.split.seed)
    files.save_npz(paths.SPLIT, train=train.astype(np.int64), val=val.astype(np.int64))
    print(f"split: {len(train)} train rows, {len(val)} validation rows")


if __name__ == "__main__":
    run_stage("split", main)
