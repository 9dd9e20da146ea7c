"""submit stage: one Kaggle submission CSV per cell, labels mapped back to their original values,
submissions/best.csv, a copy of the best cell's, and submissions/ensemble.csv, the average of
the best `doe.ensemble` cells' probabilities, when that is 2 or more. With `refit.cell` set,
submissions/refit.csv from the model the refit stage trained on every labelled row, and
best.csv is a copy of that one instead.

Each submission follows the submission format validate passes on (data/clean/submission.json):
the sample submission's column names and ImageIds when one was given, else the test file's
ImageId column, else `ImageId,Label` with ImageId 1..N in test-file order.

The best cell is the one evaluate names best_cell in metrics/doe.json: the highest mean
validation accuracy (rounded to 6 digits, as evaluate rounds it), a tie going to the name
first in alphabetical order. This stage ranks the cells from their prediction summaries
itself, by that rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import files, params, paths, results
from .common.errors import DataError, run_stage
from .common.words import plural
from .validate import SUBMISSION_FORMAT

BEST = "best"
REFIT = "refit"


def submission(truth: results.Truth, test_proba: np.ndarray, fmt: dict | None = None) -> pd.DataFrame:
    """The submission frame: one line per entry of `fmt` (default `ImageId,Label`, ImageId 1..N)."""
    labels = results.original_labels(truth, test_proba.argmax(1))
    if fmt is None:
        return pd.DataFrame({"ImageId": np.arange(1, len(labels) + 1), "Label": labels})
    rows = np.asarray(fmt["rows"], dtype=np.int64)
    if len(rows) != len(labels) or len(fmt["ids"]) != len(rows):
        raise DataError(
            f"{SUBMISSION_FORMAT}: {len(fmt['ids'])} submission lines for {len(labels)} test predictions; "
            "run `dvc repro validate`"
        )
    id_name, label_name = fmt["columns"]
    return pd.DataFrame({id_name: pd.Series(fmt["ids"], dtype=object), label_name: labels[rows]})


def best_cell(summaries: dict[str, dict]) -> str:
    """The cell evaluate will call best (see the module docstring)."""
    return results.rank({cell: s["val_accuracy_mean"] for cell, s in summaries.items()})[0]


def main() -> None:
    p = params.load()
    truth = results.load_truth()
    cells = results.declared_cells()
    for reserved, holds in ((BEST, "the best cell's"), (results.ENSEMBLE, "the ensemble's")):
        if reserved in cells:
            raise DataError(
                f"a design cell is named {reserved!r}, and {paths.SUBMISSIONS_DIR / (reserved + '.csv')} holds "
                f"{holds} submission; rename the cell"
            )
    fmt = files.read_json(SUBMISSION_FORMAT) if SUBMISSION_FORMAT.exists() else None
    summaries, probas, frames = {}, {}, {}
    for cell in cells:
        summary, proba = results.load_predictions(cell)
        summaries[cell], probas[cell] = summary, proba
        frames[cell] = submission(truth, proba["test"], fmt)
        with files.atomic_path(paths.SUBMISSIONS_DIR / f"{cell}.csv") as tmp:
            frames[cell].to_csv(tmp, index=False)
    best = best_cell(summaries)
    refit = results.refit_record(p.refit, best)
    if refit is not None:
        frames[REFIT] = submission(truth, results.refit_test_proba(truth), fmt)
        with files.atomic_path(paths.SUBMISSIONS_DIR / f"{REFIT}.csv") as tmp:
            frames[REFIT].to_csv(tmp, index=False)
    with files.atomic_path(paths.SUBMISSIONS_DIR / f"{BEST}.csv") as tmp:
        frames[best if refit is None else REFIT].to_csv(tmp, index=False)
    members = results.ensemble_members(summaries, p.ensemble)
    if members:
        ensemble = submission(truth, results.ensemble_proba(probas, members)["test"], fmt)
        with files.atomic_path(paths.SUBMISSIONS_DIR / f"{results.ENSEMBLE}.csv") as tmp:
            ensemble.to_csv(tmp, index=False)
        print(f"submit: {results.ENSEMBLE}.csv averages {', '.join(members)}")
    if refit is None:
        made = f"{best} (validation accuracy {summaries[best]['val_accuracy_mean']:.4f})"
    else:
        made = (f"{REFIT}.csv, the refit of {refit['cell']} on {plural(refit['rows'], 'labelled row', grouped=True)} "
                f"({plural(refit['epochs'], 'epoch')})")
    print(f"submit: {plural(len(cells), 'submission')} in {paths.SUBMISSIONS_DIR}/; {BEST}.csv is {made}")


if __name__ == "__main__":
    run_stage("submit", main)
