"""The submit stage with the submission format the readers pass on: a sample submission's
ImageIds and column names, a test file's ImageId column, and submissions/best.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import kaggle_csv, tiny_images, write_params

from mnist_doe import evaluate, ingest, split, submit, validate
from mnist_doe.common import files, paths, results
from mnist_doe.common.errors import DataError
from mnist_doe.readers import csvfile

CELLS = {
    "dense-a": {"family": "dense", "layers": 1, "nodes": 4},
    "dense-b": {"family": "dense", "layers": 1, "nodes": 8},
    "cnn-c": {"family": "cnn", "layers": 1, "nodes": 4},
}


def pipeline_until_train(project, test_lines: list[str], sample: str | None = None, cells=CELLS):
    """ingest, validate and split on 4x4 images of labels 3 and 7; the test file given by its lines."""
    labels = ["3", "7"] * 10
    kaggle_csv("train.csv", tiny_images(labels), labels)
    (project / "test.csv").write_text("\n".join(test_lines) + "\n")
    data = {"train_csv": "train.csv", "test_csv": "test.csv"}
    if sample is not None:
        (project / "sample.csv").write_text(sample)
        data["sample_submission_csv"] = "sample.csv"
    write_params(data=data, doe={"cells": cells})
    ingest.main()
    validate.main()
    split.main()


def fake_predictions(cell: str, test_classes: list[int], val_accuracy: float, seconds: float = 1.0) -> None:
    """What train@cell leaves: a summary and class probabilities (2 classes)."""
    n_val = len(results.validation_rows(files.load_npz(paths.SPLIT)))
    test = np.zeros((len(test_classes), 2))
    test[np.arange(len(test_classes)), test_classes] = 1.0
    files.save_npz(paths.PREDICTIONS_DIR / f"{cell}.npz", val=np.full((n_val, 2), 0.5), test=test)
    files.write_json(
        paths.PREDICTIONS_DIR / f"{cell}.json", {"val_accuracy_mean": val_accuracy, "train_seconds": seconds}
    )


def pixel_lines(n: int, ids: list[str] | None = None) -> list[str]:
    rows = tiny_images(range(n), seed=11)
    head = (["ImageId"] if ids else []) + [f"pixel{j}" for j in range(16)]
    return [",".join(head)] + [",".join(([ids[i]] if ids else []) + [str(v) for v in row]) for i, row in enumerate(rows)]


def test_sample_submission_ids_and_names_shape_every_submission_and_best_is_the_best_cell(project):
    sample = "Id,Category\n" + "".join(f"{i},0\n" for i in (101, 102, 103))
    pipeline_until_train(project, pixel_lines(3), sample)
    fake_predictions("dense-a", [0, 1, 0], 0.80)
    fake_predictions("dense-b", [1, 1, 1], 0.90)
    fake_predictions("cnn-c", [0, 0, 0], 0.85)
    submit.main()
    b = pd.read_csv(paths.SUBMISSIONS_DIR / "dense-b.csv", dtype=str)
    assert list(b.columns) == ["Id", "Category"]
    assert b.to_dict("list") == {"Id": ["101", "102", "103"], "Category": ["7", "7", "7"]}
    a = pd.read_csv(paths.SUBMISSIONS_DIR / "dense-a.csv", dtype=str)
    assert a["Category"].tolist() == ["3", "7", "3"]
    best = (paths.SUBMISSIONS_DIR / "best.csv").read_bytes()
    assert best == (paths.SUBMISSIONS_DIR / "dense-b.csv").read_bytes()


def test_best_is_the_cell_evaluate_calls_best(project):
    pipeline_until_train(project, pixel_lines(3))
    fake_predictions("dense-a", [0, 1, 0], 0.9)
    fake_predictions("dense-b", [1, 1, 1], 0.9000000001)  # equal to the 6 digits evaluate keeps
    fake_predictions("cnn-c", [0, 0, 0], 0.9, seconds=0.1)
    submit.main()
    summaries = {cell: results.load_predictions(cell)[0] for cell in CELLS}
    cells = {cell: {"val_accuracy": round(s["val_accuracy_mean"], 6)} for cell, s in summaries.items()}
    assert submit.best_cell(summaries) == evaluate.best_cell(cells) == "cnn-c"  # the tie goes to the name
    best = (paths.SUBMISSIONS_DIR / "best.csv").read_bytes()
    assert best == (paths.SUBMISSIONS_DIR / "cnn-c.csv").read_bytes()


def test_image_id_column_of_the_test_file_is_the_submissions_image_id(project):
    pipeline_until_train(project, pixel_lines(3, ["30", "10", "20"]), cells={"dense-a": CELLS["dense-a"]})
    fake_predictions("dense-a", [0, 1, 1], 0.8)
    submit.main()
    sub = pd.read_csv(paths.SUBMISSIONS_DIR / "dense-a.csv", dtype=str)
    assert sub.to_dict("list") == {"ImageId": ["30", "10", "20"], "Label": ["3", "7", "7"]}


def test_sample_submission_is_matched_to_the_test_files_image_ids(project):
    sample = "ImageId,Label\n10,0\n20,0\n30,0\n"
    pipeline_until_train(project, pixel_lines(3, ["30", "10", "20"]), sample, cells={"dense-a": CELLS["dense-a"]})
    fake_predictions("dense-a", [0, 1, 1], 0.8)  # test rows: ImageId 30 -> 3, 10 -> 7, 20 -> 7
    submit.main()
    sub = pd.read_csv(paths.SUBMISSIONS_DIR / "dense-a.csv", dtype=str)
    assert sub.to_dict("list") == {"ImageId": ["10", "20", "30"], "Label": ["7", "7", "3"]}


def test_without_ids_the_submission_is_image_id_1_to_n(project):
    pipeline_until_train(project, pixel_lines(3), cells={"dense-a": CELLS["dense-a"]})
    fake_predictions("dense-a", [1, 0, 1], 0.8)
    submit.main()
    assert (paths.SUBMISSIONS_DIR / "dense-a.csv").read_text() == "ImageId,Label\n1,7\n2,3\n3,7\n"
    assert (paths.SUBMISSIONS_DIR / "best.csv").read_text() == "ImageId,Label\n1,7\n2,3\n3,7\n"


def test_a_cell_named_best_is_refused(project):
    pipeline_until_train(project, pixel_lines(3), cells={"best": CELLS["dense-a"]})
    fake_predictions("best", [1, 0, 1], 0.8)
    with pytest.raises(DataError, match=r"^a design cell is named 'best', and submissions/best.csv holds"):
        submit.main()


def test_sample_submission_naming_an_unknown_image_id(tmp_path):
    test = tmp_path / "test.csv"
    test.write_text("\n".join(pixel_lines(2, ["1", "2"])) + "\n")
    sample = tmp_path / "sample.csv"
    sample.write_text("ImageId,Label\n1,0\n3,0\n")
    table = csvfile.read_test(test, 16)
    with pytest.raises(DataError) as err:
        csvfile.read_sample_submission(sample, table)
    assert str(err.value) == f"{sample} line 3, column ImageId: ImageId 3 is not in the test file's ImageId column"
