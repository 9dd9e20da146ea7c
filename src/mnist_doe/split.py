"""split stage: stratified, seeded index sets for the configured protocol.

Writes data/split/indices.npz:
  train       clean training rows that any run fits on (the augment stage augments these)
  n_folds     how many (fit, validation) pairs follow
  fit_<k>     clean training rows run k fits on
  val_<k>     rows run k validates on, in the file named by val_source
  val_source  "train" (holdout, kfold) or "test" (test-only)
  test_rows   test-file rows that score as the test set (all, or what test-only leaves)
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from .common import files, params, paths
from .common.errors import DataError, run_stage
from .common.words import plural


def _check_stratifiable(y: np.ndarray, n_parts: int, where: str, knob: str) -> None:
    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < n_parts:
        raise DataError(
            f"{where}: class index {int(labels[counts.argmin()])} has {plural(int(counts.min()), 'row')}; "
            f"{knob} needs at least {n_parts} per class"
        )


def holdout(y: np.ndarray, val_fraction: float, seed: int, where: str = str(paths.CLEAN_TRAIN)) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (fit, val) positions into `y`, stratified."""
    _check_stratifiable(y, 2, where, "a stratified split")
    n_val = int(round(len(y) * val_fraction))
    n_classes = len(np.unique(y))
    if n_val < n_classes or len(y) - n_val < n_classes:
        raise DataError(
            f"{where}: {plural(len(y), 'row')} cannot be split with split.val_fraction={val_fraction} "
            f"so that each of the {n_classes} classes is in both parts"
        )
    fit, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed)
    return np.sort(fit), np.sort(val)


def kfold(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    _check_stratifiable(y, folds, str(paths.CLEAN_TRAIN), f"split.folds={folds}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(f), np.sort(v)) for f, v in splitter.split(np.zeros(len(y)), y)]


def make_split(s: params.SplitParams, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, np.ndarray]:
    """The index sets of protocol `s.protocol` (see the module docstring)."""
    all_train = np.arange(len(y_train))
    test_rows = np.arange(len(y_test))
    source = "train"
    if s.protocol == "holdout":
        pairs = [holdout(y_train, s.val_fraction, s.seed)]
    elif s.protocol == "kfold":
        pairs = kfold(y_train, s.folds, s.seed)
    else:
        labelled = np.flatnonzero(y_test >= 0)
        if labelled.size == 0:
            raise DataError(
                f"{paths.CLEAN_TEST}: split.protocol test-only needs test labels "
                "(a label column in the test file, or data.test_labels_csv)"
            )
        _, val_pos = holdout(y_test[labelled], s.val_fraction, s.seed, where=str(paths.CLEAN_TEST))
        pairs = [(all_train, labelled[val_pos])]
        test_rows = np.setdiff1d(test_rows, labelled[val_pos])
        source = "test"
    out = {
        "train": np.unique(np.concatenate([fit for fit, _ in pairs])).astype(np.int64),
        "n_folds": np.array(len(pairs)),
        "val_source": np.array(source),
        "test_rows": test_rows.astype(np.int64),
    }
    for k, (fit, val) in enumerate(pairs):
        out[f"fit_{k}"] = fit.astype(np.int64)
        out[f"val_{k}"] = val.astype(np.int64)
    return out


def main() -> None:
    p = params.load()
    y_train = files.load_npz(paths.CLEAN_TRAIN)["y"]
    y_test = files.load_npz(paths.CLEAN_TEST)["y"]
    split = make_split(p.split, y_train, y_test)
    files.save_npz(paths.SPLIT, **split)
    n = int(split["n_folds"])
    val_rows = sum(len(split[f"val_{k}"]) for k in range(n))
    print(
        f"split: {p.split.protocol}, {plural(n, 'fold')}; {plural(len(split['train']), 'training row')}, "
        f"{plural(val_rows, 'validation row')} from the {split['val_source']} file, "
        f"{plural(len(split['test_rows']), 'test row')} scored"
    )


if __name__ == "__main__":
    run_stage("split", main)
