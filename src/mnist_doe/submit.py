"""submit stage: one Kaggle submission CSV per cell, labels mapped back to their original values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import files, paths, results
from .common.errors import run_stage


def submission(truth: results.Truth, test_proba: np.ndarray) -> pd.DataFrame:
    """Kaggle's `ImageId,Label` frame: ImageId 1..N in test-file order."""
    labels = results.original_labels(truth, test_proba.argmax(1))
    return pd.DataFrame({"ImageId": np.arange(1, len(labels) + 1), "Label": labels})


def main() -> None:
    truth = results.load_truth()
    cells = results.declared_cells()
    for cell in cells:
        frame = submission(truth, results.load_predictions(cell)[1]["test"])
        with files.atomic_path(paths.SUBMISSIONS_DIR / f"{cell}.csv") as tmp:
            frame.to_csv(tmp, index=False)
    print(f"submit: {len(cells)} submissions in {paths.SUBMISSIONS_DIR}/")


if __name__ == "__main__":
    run_stage("submit", main)
