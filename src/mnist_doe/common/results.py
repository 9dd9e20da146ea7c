"""What evaluate, confusion and submit share: the truth, and each cell's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import files, params, paths
from .errors import DataError
from .words import plural


@dataclass(frozen=True)
class Truth:
    classes: list[str]  # original label text, in class-index order
    y_val: np.ndarray  # labels of validation_rows(split), in that order
    y_test: np.ndarray  # one per test-file row; -1 where unknown or not scored as test
    test_labels_known: bool
    names: list[str] = None  # what tables, plots and answers call each class (data.class_names)

    def __post_init__(self):
        if self.names is None:
            object.__setattr__(self, "names", list(self.classes))


def validation_rows(split: dict[str, np.ndarray]) -> np.ndarray:
    """Every row some run validates on (in the file split['val_source'] names), sorted."""
    n_folds = int(split["n_folds"])
    return np.unique(np.concatenate([split[f"val_{k}"] for k in range(n_folds)]))


def load_truth() -> Truth:
    label_map = files.read_json(paths.LABEL_MAP)
    split = files.load_npz(paths.SPLIT)
    y_test = files.load_npz(paths.CLEAN_TEST)["y"]
    source = paths.CLEAN_TEST if str(split["val_source"]) == "test" else paths.CLEAN_TRAIN
    y_source = y_test if source == paths.CLEAN_TEST else files.load_npz(paths.CLEAN_TRAIN)["y"]
    scored = np.full(len(y_test), -1, dtype=np.int64)
    scored[split["test_rows"]] = y_test[split["test_rows"]]
    classes = [str(c) for c in label_map["classes"]]
    return Truth(
        classes=classes,
        y_val=y_source[validation_rows(split)],
        y_test=scored,
        test_labels_known=bool(np.any(scored >= 0)),
        names=class_names(classes, params.load().data.class_names),
    )


def class_names(classes: list[str], names: dict) -> list[str]:
    """Each class's name from `data.class_names` (label -> name), its label text where none is
    given. Names of labels the data does not have (a design naming all 24 letters run on a
    sample of them, or a mistyped label) are left out, and said."""
    from ..readers.csvfile import normalise_label  # readers import common: import here

    given = {normalise_label(label): str(name) for label, name in names.items()}
    unknown = sorted(set(given) - set(classes))
    if unknown:
        print(f"note: data.class_names names {plural(len(unknown), 'label')} the training data does not have "
              f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}); they are not used")
    return [given.get(label, label) for label in classes]


def load_predictions(cell: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Return (summary, {'val','test'} class probabilities) written by train@cell.

    'val' follows validation_rows(); with several runs (folds, replicates) each row holds
    the mean over the runs that validated it, and 'test' the mean over all runs.
    """
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


def display_names(truth: Truth, indices: np.ndarray) -> np.ndarray:
    """The classes' names (data.class_names), for people: tables, plots, answers."""
    return np.asarray(truth.names, dtype=str)[indices]


ENSEMBLE = "ensemble"


def rank(val_accuracy: dict[str, float]) -> list[str]:
    """Cell names best first: the highest validation accuracy (to 6 digits, as the metrics
    are written), a tie going to the name first in alphabetical order."""
    return sorted(val_accuracy, key=lambda cell: (-round(val_accuracy[cell], 6), cell))


def ensemble_members(summaries: dict[str, dict], k: int) -> list[str]:
    """The k best cells by their train summaries' mean validation accuracy, every cell when there
    are fewer; [] when k < 2 or there is one cell only."""
    if k < 2 or len(summaries) < 2:
        return []
    return rank({cell: s["val_accuracy_mean"] for cell, s in summaries.items()})[:k]


def ensemble_proba(probas: dict[str, dict[str, np.ndarray]], members: list[str]) -> dict[str, np.ndarray]:
    """The members' class probabilities averaged, on the validation rows and the test file."""
    return {split: np.mean([probas[cell][split] for cell in members], axis=0).astype(np.float32)
            for split in ("val", "test")}


def refit_record(refit: params.RefitParams, best: str) -> dict | None:
    """The refit stage's record (models/refit/refit.json) when `refit` turns it on, None when
    off: one of the cell `refit.cell` names (for `best`, of the cell `best`), else an error
    saying what to rerun."""
    if refit.cell == params.REFIT_OFF:
        return None
    record = files.read_json(paths.REFIT_RECORD) if paths.REFIT_RECORD.exists() else {}
    expected = best if refit.cell == params.REFIT_BEST else refit.cell
    if record.get("cell") != expected:
        made = f"the refit of {record['cell']}" if record.get("cell") else "no refit"
        raise DataError(f"{paths.REFIT_RECORD}: {made}, and refit.cell asks for {expected}; run `dvc repro refit`")
    return record


def refit_test_proba(truth: Truth) -> np.ndarray:
    """The refit model's class probabilities for every row of the test file."""
    test = files.load_npz(paths.REFIT_PREDICTIONS)["test"]
    if len(test) != len(truth.y_test):
        raise DataError(f"{paths.REFIT_PREDICTIONS}: {len(test)} test predictions for {len(truth.y_test)} test rows; "
                        "run `dvc repro refit`")
    return test
