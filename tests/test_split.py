"""Split protocols: holdout, k-fold and test-only; and the run budget."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mnist_doe import split
from mnist_doe.common import params
from mnist_doe.common.errors import DataError

from project import ROOT

Y = np.repeat(np.arange(4), 25)  # 4 classes x 25 rows
Y_TEST = np.repeat(np.arange(4), 10)


def settings(**knobs) -> params.SplitParams:
    return params.SplitParams(**knobs)


def test_holdout_is_stratified_seeded_and_disjoint():
    out = split.make_split(settings(val_fraction=0.2, seed=1), Y, Y_TEST)
    fit, val = out["fit_0"], out["val_0"]
    assert int(out["n_folds"]) == 1 and str(out["val_source"]) == "train"
    assert len(val) == 20 and np.bincount(Y[val]).tolist() == [5, 5, 5, 5]
    assert np.intersect1d(fit, val).size == 0 and len(fit) + len(val) == 100
    np.testing.assert_array_equal(out["train"], fit)
    np.testing.assert_array_equal(out["test_rows"], np.arange(40))
    again = split.make_split(settings(val_fraction=0.2, seed=1), Y, Y_TEST)
    other = split.make_split(settings(val_fraction=0.2, seed=2), Y, Y_TEST)
    np.testing.assert_array_equal(again["val_0"], val)
    assert not np.array_equal(other["val_0"], val)


def test_kfold_validates_every_row_exactly_once():
    out = split.make_split(settings(protocol="kfold", folds=5), Y, Y_TEST)
    assert int(out["n_folds"]) == 5
    vals = np.concatenate([out[f"val_{k}"] for k in range(5)])
    assert sorted(vals.tolist()) == list(range(100))
    for k in range(5):
        assert np.bincount(Y[out[f"val_{k}"]]).tolist() == [5, 5, 5, 5]
        assert np.intersect1d(out[f"fit_{k}"], out[f"val_{k}"]).size == 0
    np.testing.assert_array_equal(out["train"], np.arange(100))


def test_test_only_draws_validation_from_the_test_file_and_scores_the_rest():
    out = split.make_split(settings(protocol="test-only", val_fraction=0.5), Y, Y_TEST)
    assert str(out["val_source"]) == "test"
    np.testing.assert_array_equal(out["fit_0"], np.arange(100))  # the train file only trains
    val, scored = out["val_0"], out["test_rows"]
    assert len(val) == 20 and np.bincount(Y_TEST[val]).tolist() == [5, 5, 5, 5]
    assert np.intersect1d(val, scored).size == 0 and len(val) + len(scored) == 40


def test_test_only_without_test_labels_is_an_error():
    with pytest.raises(DataError, match="test-only needs test labels"):
        split.make_split(settings(protocol="test-only"), Y, np.full(40, -1))


def test_a_class_too_small_for_the_folds_is_named():
    y = np.concatenate([Y, [4, 4]])
    with pytest.raises(DataError, match=r"class index 4 has 2 rows; split.folds=5 needs at least 5 per class"):
        split.make_split(settings(protocol="kfold", folds=5), y, Y_TEST)


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_a_design_over_budget_is_refused_naming_count_and_limit():
    raw = default_params()
    raw["split"].update(protocol="kfold", folds=5, replicates=2)
    with pytest.raises(params.ParamsError) as err:
        params.parse(raw)
    assert str(err.value) == (
        "params.yaml: the design needs 60 training runs (6 cells x 5 folds x 2 replicates), "
        "over budget.max_runs=50; remove cells or raise the budget"
    )
    raw["budget"] = {"max_runs": 60}
    assert params.parse(raw).runs_per_cell == 10


def test_unknown_protocol_is_refused():
    raw = default_params()
    raw["split"]["protocol"] = "bootstrap"
    with pytest.raises(params.ParamsError, match="'split.protocol' is 'bootstrap'; choose one of holdout, kfold, test-only"):
        params.parse(raw)
