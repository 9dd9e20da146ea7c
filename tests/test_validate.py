from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import kaggle_csv, tiny_images, write_params

from mnist_doe import ingest, validate
from mnist_doe.common import errors, files, paths
from mnist_doe.common.errors import DataError


def run_stages(train_labels, train_cells=None, test_labels=None, test_cells=None, header="digit", **sections):
    """Write train.csv / test.csv in the current project, run ingest and validate."""
    if train_cells is None:
        train_cells = tiny_images(train_labels)
    if test_cells is None:
        test_cells = tiny_images([0, 1], seed=99)
    kaggle_csv("train.csv", train_cells, train_labels, header=header)
    kaggle_csv("test.csv", test_cells, test_labels, header=header)
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv", **sections.pop("data", {})}, **sections)
    ingest.main()
    validate.main()


def outputs():
    quarantine = pd.read_csv(paths.QUARANTINE, dtype={"label": str}, keep_default_na=False)
    return {
        "train": files.load_npz(paths.CLEAN_TRAIN),
        "test": files.load_npz(paths.CLEAN_TEST),
        "label_map": files.read_json(paths.LABEL_MAP),
        "quarantine": quarantine.to_dict("records"),
        "metrics": files.read_json(paths.VALIDATE_METRICS),
    }


def assert_rows_balance(out):
    m = out["metrics"]
    assert m["rows_in"] == m["rows_kept"] + m["rows_quarantined"]
    assert m["rows_kept"] == len(out["train"]["y"])
    assert m["rows_quarantined"] == len(out["quarantine"]) == sum(m["quarantined_by_reason"].values())


def test_sign_language_labels_and_a_stray_200(project):
    letters = [str(label) for label in range(25) if label != 9]
    labels = [label for label in letters for _ in range(5)]
    labels.insert(37, "200")
    run_stages(labels, test_labels=["24", "9"], test_cells=tiny_images([0, 1], seed=5), header="fashion")
    out = outputs()

    assert out["label_map"] == {"classes": letters, "side": 4, "test_labels_known": True}
    assert out["quarantine"] == [
        {"file": "train.csv", "line": 39, "label": "200", "reason": "rare label: '200' has 1 row (validate.min_class_rows is 5)"}
    ]
    assert out["train"]["y"].tolist() == [c for c in range(24) for _ in range(5)]
    assert 39 not in out["train"]["lines"]
    assert out["test"]["y"].tolist() == [23, -1]
    m = out["metrics"]
    assert m["classes"] == 24
    assert m["quarantined_by_reason"] == {"bad cell": 0, "label not declared": 0, "rare label": 1, "duplicate": 0}
    assert m["test_rows_unknown_label"] == 1
    assert_rows_balance(out)
    for name in ("class_distribution.png", "pixel_histogram.png", "samples.png"):
        assert (paths.EDA_DIR / name).read_bytes()[:4] == b"\x89PNG"


def test_string_labels_map_in_string_order(project):
    letters = [chr(c) for c in range(ord("A"), ord("Z")) if c != ord("J")]
    labels = [letter for letter in reversed(letters) for _ in range(5)]
    run_stages(labels, test_labels=["Y", "A"])
    out = outputs()
    assert out["label_map"]["classes"] == letters
    assert out["train"]["y"][:5].tolist() == [23] * 5
    assert out["test"]["y"].tolist() == [23, 0]
    assert out["train"]["y"].dtype == np.int64


def test_integer_labels_sort_numerically(project):
    labels = [str(label) for label in (10, 2, 1) for _ in range(5)]
    run_stages(labels)
    out = outputs()
    assert out["label_map"]["classes"] == ["1", "2", "10"]
    assert out["test"]["y"].tolist() == [-1, -1]
    assert out["label_map"]["test_labels_known"] is False
    assert out["metrics"]["test_rows_unknown_label"] == 0


def test_rows_with_bad_cells_are_quarantined(project):
    labels = ["0"] * 7 + ["1"] * 7
    cells = tiny_images(labels).astype(object)
    cells[2, 3] = "abc"
    cells[2, 4] = ""
    cells[8, 0] = 999
    labels[10] = ""
    run_stages(labels, cells)
    out = outputs()
    assert out["quarantine"] == [
        {"file": "train.csv", "line": 4, "label": "0", "reason": "bad cell: pixel3 'abc' is not a number (+1 more)"},
        {"file": "train.csv", "line": 10, "label": "1", "reason": "bad cell: pixel0 '999' is outside 0..255"},
        {"file": "train.csv", "line": 12, "label": "", "reason": "bad cell: missing label"},
    ]
    assert out["metrics"]["rows_kept"] == 11
    assert out["metrics"]["quarantined_by_reason"]["bad cell"] == 3
    assert_rows_balance(out)


def test_undeclared_labels_are_quarantined(project):
    labels = ["0"] * 5 + ["1"] * 5 + ["7"] * 5
    run_stages(labels, data={"labels": [0, 1]})
    out = outputs()
    assert out["label_map"]["classes"] == ["0", "1"]
    assert [row["line"] for row in out["quarantine"]] == list(range(12, 17))
    assert out["quarantine"][0]["reason"] == "label not declared: '7' is not in data.labels [0, 1]"
    assert out["metrics"]["quarantined_by_reason"]["label not declared"] == 5
    assert_rows_balance(out)


def duplicated_rows():
    labels = ["0"] * 6 + ["1"] * 6
    cells = tiny_images(labels)
    cells[3] = cells[1]  # same image, same label: a duplicate (lines 3 and 5)
    cells[4] = cells[1]  # and a third copy (line 6)
    cells[8] = cells[1]  # same image, other label: not a duplicate
    return labels, cells


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("keep", []),
        (
            "drop",
            [(5, "duplicate of line 3 (dropped)"), (6, "duplicate of line 3 (dropped)")],
        ),
        (
            "quarantine",
            [(line, "duplicate: same image and label on lines 3, 5, 6 (quarantined)") for line in (3, 5, 6)],
        ),
    ],
)
def test_duplicate_policies(project, policy, expected):
    labels, cells = duplicated_rows()
    run_stages(labels, cells, validate={"duplicates": policy, "min_class_rows": 2})
    out = outputs()
    assert [(row["line"], row["reason"]) for row in out["quarantine"]] == expected
    assert out["metrics"]["quarantined_by_reason"]["duplicate"] == len(expected)
    assert_rows_balance(out)


def test_train_test_duplicates_are_only_reported(project):
    labels = ["0"] * 5 + ["1"] * 5
    cells = tiny_images(labels)
    test_cells = np.stack([cells[7], tiny_images([0], seed=3)[0], cells[2]])
    run_stages(labels, cells, test_cells=test_cells)
    out = outputs()
    assert out["metrics"]["train_test_duplicates"] == 2
    assert out["metrics"]["train_test_duplicate_lines"] == [
        {"train_line": 9, "test_line": 2},
        {"train_line": 4, "test_line": 4},
    ]
    assert out["metrics"]["rows_kept"] == 10 and len(out["test"]["y"]) == 3


def test_class_too_small_to_stratify(project, capsys):
    labels = ["0"] * 5 + ["1"]
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"}, validate={"min_class_rows": 1})
    kaggle_csv("train.csv", tiny_images(labels), labels)
    kaggle_csv("test.csv", tiny_images([0]), None)
    ingest.main()
    with pytest.raises(SystemExit):
        errors.run_stage("validate", validate.main)
    assert capsys.readouterr().err == (
        "validate: error: train.csv: label '1' has 1 training row left after quarantine; "
        "a stratified validation split needs at least 2 per class\n"
    )


def test_declared_label_without_rows(project):
    labels = ["0"] * 5 + ["1"] * 5
    with pytest.raises(DataError, match=r"^train\.csv: label '2' has 0 training rows left after quarantine"):
        run_stages(labels, data={"labels": [0, 1, 2]})


def test_outputs_contract(project):
    labels = ["5"] * 4 + ["6"] * 4 + ["200"]
    run_stages(labels, test_labels=["6", "7"], validate={"min_class_rows": 2})
    out = outputs()
    train, test = out["train"], out["test"]
    assert sorted(train) == ["lines", "pixels", "y"] and sorted(test) == ["lines", "pixels", "y"]
    assert train["pixels"].dtype == test["pixels"].dtype == np.uint8
    assert train["y"].dtype == test["y"].dtype == train["lines"].dtype == np.int64
    assert train["pixels"].shape == (8, 16) and test["pixels"].shape == (2, 16)
    assert test["y"].tolist() == [1, -1]
    assert list(out["metrics"]) == [
        "rows_in", "rows_kept", "rows_quarantined", "quarantined_by_reason", "classes",
        "test_rows", "test_rows_unknown_label", "train_test_duplicates", "train_test_duplicate_lines",
    ]
    assert_rows_balance(out)


def test_empty_quarantine_is_a_header(project):
    run_stages(["0"] * 5 + ["1"] * 5)
    assert paths.QUARANTINE.read_text() == "file,line,label,reason\n"


def test_clean_keeps_or_quarantines_every_row():
    labels = np.array(["0", "0", "0", "1", "1", "1", "9"])
    pixels = tiny_images(labels)
    pixels[2] = pixels[0]
    issues = pd.DataFrame([{"row": 4, "line": 6, "column": "pixel1", "value": "x", "reason": "not a number"}])
    result = validate.clean(
        {"pixels": pixels, "labels": labels, "lines": np.arange(2, 9)},
        {"pixels": pixels[:1], "lines": np.array([2])},
        issues,
        train_file="t.csv",
        declared=[],
        min_class_rows=2,
        duplicates="drop",
    )
    assert result.train_lines.tolist() == [2, 3, 5, 7]
    assert result.quarantine["line"].tolist() == [4, 6, 8]
    assert result.metrics["rows_in"] == 7 == len(result.train_lines) + len(result.quarantine)


# labels (issue 18, case 5)


def test_a_single_class_is_one_line_at_validate(project, capsys):
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    kaggle_csv("train.csv", tiny_images(["0"] * 8), ["0"] * 8)
    kaggle_csv("test.csv", tiny_images([0]), None)
    ingest.main()
    with pytest.raises(SystemExit) as exit_:
        errors.run_stage("validate", validate.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "validate: error: train.csv: every one of the 8 training rows left after quarantine has the label '0'; "
        "a classifier needs at least two classes (is the label in another column?)\n"
    )
    assert not paths.CLEAN_TRAIN.exists()


def test_label_in_the_last_column_is_not_one_class(project):
    labels = ["3"] * 5 + ["7"] * 5
    pixels = tiny_images(labels)
    pixels[:, 0] = 0  # a corner pixel: the column that was read as the one class
    lines = [",".join([f"pixel{j}" for j in range(16)] + ["label"])]
    lines += [",".join([str(v) for v in row] + [label]) for row, label in zip(pixels, labels)]
    Path("train.csv").write_text("\n".join(lines) + "\n")
    kaggle_csv("test.csv", tiny_images([0, 1], seed=9), None, header=None)
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    ingest.main()
    validate.main()
    out = outputs()
    assert out["label_map"]["classes"] == ["3", "7"]
    np.testing.assert_array_equal(out["train"]["pixels"], pixels)
    assert out["train"]["y"].tolist() == [0] * 5 + [1] * 5


def test_numeric_spellings_are_one_label_in_training_test_and_declared(project):
    labels = ["5", "5.0", "05", "5", "5", "6", "6.0", "06", "6", "+6"]
    run_stages(labels, test_labels=["5.0", "06"], data={"labels": [5.0, "6"]}, header="fashion")
    out = outputs()
    assert out["label_map"]["classes"] == ["5", "6"]
    assert out["quarantine"] == []
    assert out["train"]["y"].tolist() == [0] * 5 + [1] * 5
    assert out["test"]["y"].tolist() == [0, 1]
    assert out["metrics"]["test_rows_unknown_label"] == 0


# the test file's layout reaches the clean arrays and the submission format (issue 18, case 3)


def test_image_id_column_in_a_headerless_test_file(project):
    labels = [str(d) for d in range(10) for _ in range(5)]
    kaggle_csv("train.csv", tiny_images(labels), labels, header=None)
    test_pixels = tiny_images(range(100), seed=7)
    kaggle_csv("test.csv", test_pixels, [str(i) for i in range(1, 101)], header=None)
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    ingest.main()
    validate.main()
    out = outputs()
    np.testing.assert_array_equal(out["test"]["pixels"], test_pixels)
    assert out["label_map"]["test_labels_known"] is False
    assert out["test"]["y"].tolist() == [-1] * 100
    assert out["metrics"]["test_rows_unknown_label"] == 0
    fmt = files.read_json(validate.SUBMISSION_FORMAT)
    assert fmt["columns"] == ["ImageId", "Label"]
    assert fmt["ids"] == [str(i) for i in range(1, 101)] and fmt["rows"] == list(range(100))
