"""confusion stage: confusion data for every cell (`dvc plots`), and a heatmap of the best cell."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix  # noqa: E402

from .common import files, paths, results  # noqa: E402
from .common.errors import run_stage  # noqa: E402
from .common.words import plural  # noqa: E402

BEST_HEATMAP = Path("plots/confusion_best.png")
BEST_ERRORS = Path("plots/confusion_errors.png")
MISCLASSIFIED = Path("plots/misclassified.png")
GALLERY_SIZE = 40


def pairs(truth: results.Truth, proba: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per judged image: its actual and predicted label, in original label text."""
    split, y_true = results.scored_split(truth)
    known = y_true >= 0
    y_pred = proba[split].argmax(1)
    return pd.DataFrame(
        {
            "actual": results.display_names(truth, y_true[known]),
            "predicted": results.display_names(truth, y_pred[known]),
        }
    )


def heatmap(frame: pd.DataFrame, classes: list[str], title: str, path: Path) -> None:
    """The confusion matrix as scikit-learn draws it, rows actual and columns predicted."""
    matrix = confusion_matrix(frame["actual"], frame["predicted"], labels=classes)
    size = max(6.0, 0.4 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    display = ConfusionMatrixDisplay(matrix, display_labels=classes)
    display.plot(ax=ax, cmap="Blues", colorbar=True, values_format="d", text_kw={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    fig.tight_layout()
    files.save_png(fig, path)


def error_heatmap(frame: pd.DataFrame, classes: list[str], title: str, path: Path) -> None:
    """The confusion matrix with its diagonal zeroed, so the errors stand out; each tick holds
    its class's error count (per true label on the left, per predicted label below)."""
    matrix = confusion_matrix(frame["actual"], frame["predicted"], labels=classes)
    np.fill_diagonal(matrix, 0)
    size = max(6.0, 0.45 * len(classes) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(
        ax=ax, cmap="Reds", colorbar=False, values_format="d", text_kw={"fontsize": 7}, xticks_rotation=0)
    # each tick names its class and, in brackets, that class's errors
    ax.set_yticks(range(len(classes)), [f"{c} [{e}]" for c, e in zip(classes, matrix.sum(axis=1))])
    ax.set_xticks(range(len(classes)), [f"{c}\n[{e}]" for c, e in zip(classes, matrix.sum(axis=0))])
    ax.set(xlabel="predicted [errors per predicted label]", ylabel="actual [errors per true label]", title=title)
    fig.tight_layout()
    files.save_png(fig, path)


def scored_pixels(truth: results.Truth) -> np.ndarray:
    """The images of the set that judges the cells, in the order of its predictions."""
    split = files.load_npz(paths.SPLIT)
    if results.scored_split(truth)[0] == "test":
        return files.load_npz(paths.CLEAN_TEST)["pixels"]
    source = paths.CLEAN_TEST if str(split["val_source"]) == "test" else paths.CLEAN_TRAIN
    return files.load_npz(source)["pixels"][results.validation_rows(split)]


def gallery(truth: results.Truth, proba: dict[str, np.ndarray], title: str, path: Path) -> int:
    """Up to GALLERY_SIZE misclassified images (the first in file order), each titled with its
    true and predicted class; returns how many were misclassified in all."""
    split, y_true = results.scored_split(truth)
    y_pred = proba[split].argmax(1)
    wrong = np.flatnonzero((y_true >= 0) & (y_pred != y_true))
    pixels = scored_pixels(truth)
    side = int(round(pixels.shape[1] ** 0.5))
    shown = wrong[:GALLERY_SIZE]
    columns = 10
    rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.45 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    names = truth.names
    for ax, i in zip(axes.flat, shown):
        ax.imshow(pixels[i].reshape(side, side), cmap="gray_r")
        ax.set_title(f"{names[y_true[i]]} as\n{names[y_pred[i]]}", fontsize=7)
    fig.suptitle(f"{title}: {len(wrong)} misclassified, the first {len(shown)} (true as predicted)", fontsize=9)
    fig.tight_layout()
    files.save_png(fig, path)
    return len(wrong)


def main() -> None:
    truth = results.load_truth()
    best = files.read_json(paths.DOE_METRICS)["best_cell"]
    split, _ = results.scored_split(truth)
    for cell in results.declared_cells():
        frame = pairs(truth, results.load_predictions(cell)[1])
        with files.atomic_path(paths.CONFUSION_DIR / f"{cell}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        if cell == best:
            set_name = "test" if split == "test" else "validation"
            heatmap(frame, truth.names, f"{cell}: confusion on the {set_name} set", BEST_HEATMAP)
            error_heatmap(frame, truth.names, f"{cell}: errors on the {set_name} set", BEST_ERRORS)
            gallery(truth, results.load_predictions(cell)[1], f"{cell} on the {set_name} set", MISCLASSIFIED)
    print(f"confusion: {plural(len(results.declared_cells()), 'cell')}; best {best} drawn to {BEST_HEATMAP}")


if __name__ == "__main__":
    run_stage("confusion", main)
