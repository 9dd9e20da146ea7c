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

BEST_HEATMAP = Path("plots/confusion_best.png")


def pairs(truth: results.Truth, proba: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per judged image: its actual and predicted label, in original label text."""
    split, y_true = results.scored_split(truth)
    known = y_true >= 0
    y_pred = proba[split].argmax(1)
    return pd.DataFrame(
        {
            "actual": results.original_labels(truth, y_true[known]),
            "predicted": results.original_labels(truth, y_pred[known]),
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
            heatmap(frame, truth.classes, f"{cell}: confusion on the {set_name} set", BEST_HEATMAP)
    print(f"confusion: {len(results.declared_cells())} cells; best {best} drawn to {BEST_HEATMAP}")


if __name__ == "__main__":
    run_stage("confusion", main)
