"""The data section of params.yaml: which input files go together, and what a label can be."""

from __future__ import annotations

import copy

import pytest
from conftest import DEFAULT_PARAMS

from mnist_doe.common import params
from mnist_doe.common.params import ParamsError


def parse_data(**data):
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["data"] = {**raw.get("data", {}), **data}
    return params.parse(raw)


def message(**data):
    with pytest.raises(ParamsError) as err:
        parse_data(**data)
    return str(err.value)


def test_new_keys_default_to_empty():
    data = parse_data().data
    assert data.kaggle_zip == "" and data.sample_submission_csv == ""


def test_kaggle_zip_alone_is_a_data_source():
    p = parse_data(kaggle_zip="data/external/digit-recognizer.zip", test_labels_csv="answers.csv")
    assert p.data.kaggle_zip == "data/external/digit-recognizer.zip"


def test_kaggle_zip_and_a_csv_pair_together_are_refused():
    assert message(kaggle_zip="d.zip", train_csv="train.csv", test_csv="test.csv") == (
        "params.yaml: set 'data.kaggle_zip' or 'data.train_csv' and 'data.test_csv', not both"
    )


def test_sample_submission_needs_a_test_file():
    assert message(sample_submission_csv="sample.csv") == (
        "params.yaml: 'data.sample_submission_csv' is set but neither 'data.test_csv' nor 'data.kaggle_zip' is"
    )


@pytest.mark.parametrize("value", [[0, 1], {"a": 1}, True, None])
def test_a_label_that_is_not_a_number_or_a_string_is_refused(value):
    assert message(labels=[value, 2, 3]) == (
        f"params.yaml: 'data.labels' holds {value!r}; each label is a number or a string "
        "(not a list, a mapping, a boolean or an empty entry)"
    )


def test_labels_that_normalise_to_one_are_refused():
    assert message(labels=[5, "5.0", 6]) == "params.yaml: 'data.labels' lists 5 and '5.0', which are one label (5)"


def test_one_declared_label_is_refused():
    assert message(labels=["A"]) == "params.yaml: 'data.labels' lists one label (A); a classifier needs at least two"


def test_non_finite_label_is_refused():
    assert message(labels=[float("nan"), 1]) == "params.yaml: 'data.labels' holds nan; a label is a finite number or a string"


def test_numbers_and_strings_are_labels():
    assert parse_data(labels=[0, 1.0, "A"]).data.labels == [0, 1.0, "A"]
