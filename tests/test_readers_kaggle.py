"""Kaggle files as users have them (issue 17): a .csv.gz, a zip of one CSV, and the competition
zip (digit-recognizer.zip) with its sample submission, read end to end through ingest and validate."""

from __future__ import annotations

import gzip
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import write_params

from mnist_doe import ingest, validate
from mnist_doe.common import errors, files, paths
from mnist_doe.readers.tiny import write_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A Digit-Recognizer-style pair: 200 training rows, 20 test rows, answers aside."""
    return write_pair(tmp_path_factory.mktemp("pair"), n_train=200, n_test=20, style="digit", seed=1)


def competition_zip(path, pair, sample_ids=None):
    sample_ids = list(range(1, 21)) if sample_ids is None else sample_ids
    sample = pd.DataFrame({"ImageId": sample_ids, "Label": 0}).to_csv(index=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(pair["train"], "train.csv")
        archive.write(pair["test"], "test.csv")
        archive.writestr("sample_submission.csv", sample)
    return path


def test_kaggle_zip_end_to_end(project, pair):
    competition_zip(project / "digit-recognizer.zip", pair)
    shutil.copy(pair["test_labels"], project / "answers.csv")
    write_params(data={"kaggle_zip": "digit-recognizer.zip", "test_labels_csv": "answers.csv"})
    ingest.main()
    validate.main()

    expected_train = pd.read_csv(pair["train"])
    expected_test = pd.read_csv(pair["test"])
    raw = files.load_npz(paths.RAW_TRAIN)
    np.testing.assert_array_equal(raw["pixels"], expected_train.iloc[:, 1:].to_numpy())
    assert raw["labels"].tolist() == expected_train["label"].astype(str).tolist()
    clean_test = files.load_npz(paths.CLEAN_TEST)
    np.testing.assert_array_equal(clean_test["pixels"], expected_test.to_numpy())
    assert (clean_test["y"] >= 0).all()
    metrics = files.read_json(paths.VALIDATE_METRICS)
    assert metrics["rows_in"] == 200 == metrics["rows_kept"] + metrics["rows_quarantined"]
    source = files.read_json(ingest.SOURCE)
    assert source["train"]["path"] == "digit-recognizer.zip:train.csv"
    assert source["test"]["path"] == "digit-recognizer.zip:test.csv"
    assert source["train"]["archive"] == "digit-recognizer.zip"
    fmt = files.read_json(validate.SUBMISSION_FORMAT)
    assert fmt["columns"] == ["ImageId", "Label"]
    assert fmt["ids"] == [str(i) for i in range(1, 21)] and fmt["rows"] == list(range(20))
    assert fmt["source"] == "digit-recognizer.zip:sample_submission.csv"


def test_sample_submission_with_too_few_rows_is_one_line(project, pair, capsys):
    competition_zip(project / "digit-recognizer.zip", pair, sample_ids=list(range(1, 20)))
    write_params(data={"kaggle_zip": "digit-recognizer.zip"})
    with pytest.raises(SystemExit):
        errors.run_stage("ingest", ingest.main)
    assert capsys.readouterr().err == (
        "ingest: error: digit-recognizer.zip:sample_submission.csv: 19 rows for 20 test images; "
        "expected one per test image\n"
    )


@pytest.mark.parametrize("packing", ["gz", "zip"])
def test_train_and_test_csv_may_be_gzipped_or_zipped(project, pair, packing):
    names = {}
    for role in ("train", "test"):
        if packing == "gz":
            names[role] = f"{role}.csv.gz"
            (project / names[role]).write_bytes(gzip.compress(pair[role].read_bytes()))
        else:
            names[role] = f"{role}.zip"
            with zipfile.ZipFile(project / names[role], "w", zipfile.ZIP_DEFLATED) as archive:
                archive.write(pair[role], f"{role}.csv")
    write_params(data={"train_csv": names["train"], "test_csv": names["test"]})
    ingest.main()
    raw = files.load_npz(paths.RAW_TEST)
    np.testing.assert_array_equal(raw["pixels"], pd.read_csv(pair["test"]).to_numpy())
    assert files.read_json(ingest.SOURCE)["train"]["rows"] == 200
