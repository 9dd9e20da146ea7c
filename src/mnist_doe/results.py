"""What evaluate, confusion and submit share: the truth, and each cell's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import files, params, paths
from .errors import DataError


@dataclass(frozen=True)
class Truth:
    classes: list[str]  # original label text, in class-index order
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray  # -1 where the test label is unknown
    test_labels_known: bool


def load_truth() -> Truth:
    label_map = files.read_json(paths.LABEL_MAP)
    clean = files.load_npz(paths.CLEAN_TRAIN)
    split = files.load_npz(paths.SPLIT)
    y_test = files.load_npz(paths.CLEAN_TEST)["y"]
    return Truth(
        classes=[str(c) for c in label_map["classes"]],
        y_train=clean["y"][split["train"]],
        y_val=clean["y"][split["val"]],
        y_test=y_test,
        test_labels_known=bool(np.any(y_test >= 0)),
    )


def load_predictions(cell: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Return (summary, {'train','val','test'} class probabilities) written by train@cell."""
    summary_path = paths.PREDICTIONS_DIR / f"{cell}.json"
    if not summary_path.exists():
        raise DataError(f"{summary_path}: missing; run `dvc repro train@{cell}` first")
    return files.read_json(summary_path), files.load_npz(paths.PREDICTIONS_DIR / f"{cell}.npz")


def declared_cells() -> list[str]:
    """Cells in params.yaml, in declared order (stale prediction files are ignored)."""
    return list(params.load().cells)


def scored_split(truth: Truth) -> tuple[str, np.ndarray]:
    """The held-out set that judges a cell: test when its labels are known, else validation."""
    if truth.test_labels_known:
        return "test", truth.y_test
    return "val", truth.y_val


def original_labels(truth: Truth, indices: np.ndarray) -> np.ndarray:
    return np.asarray(truth.classes, dtype=str)[indices]
