import copy

import pytest
from conftest import DEFAULT_PARAMS

from mnist_doe.common import params
from mnist_doe.common.params import ParamsError


def parse_with(change):
    raw = copy.deepcopy(DEFAULT_PARAMS)
    change(raw)
    return params.parse(raw)


def message(change):
    with pytest.raises(ParamsError) as err:
        parse_with(change)
    return str(err.value)


def test_repository_params_parse():
    p = params.parse(copy.deepcopy(DEFAULT_PARAMS))
    assert p.data.train_csv == "" and p.validate.duplicates in params.DUPLICATE_POLICIES
    assert p.cells and all(cell.train.epochs >= 1 for cell in p.cells.values())


def test_unknown_top_level_key():
    assert message(lambda raw: raw.update(trian={})) == (
        "params.yaml: unknown key 'trian' (known: augment, budget, data, doe, report, split, train, validate)"
    )


def test_unknown_section_key():
    assert message(lambda raw: raw["validate"].update(duplicate="drop")) == (
        "params.yaml: unknown key 'validate.duplicate' (known: duplicates, min_class_rows)"
    )


def test_unknown_cell_key():
    def change(raw):
        raw["doe"]["cells"] = {"d": {"family": "dense", "layers": 2, "nodes": 10, "units": 3}}

    assert message(change).startswith("params.yaml: unknown key 'doe.cells.d.units' (a cell takes family, layers, nodes")


def test_wrong_type():
    assert message(lambda raw: raw["train"].update(epochs="ten")) == (
        "params.yaml: 'train.epochs' must be an integer, got 'ten'"
    )
    assert message(lambda raw: raw["data"].update(labels="0,1")) == "params.yaml: 'data.labels' must be a list, got '0,1'"


def test_negative_layers():
    def change(raw):
        raw["doe"]["cells"] = {"d": {"family": "dense", "layers": -2, "nodes": 10}}

    assert message(change) == "params.yaml: 'doe.cells.d.layers' must be >= 1, got -2"


def test_empty_design():
    assert message(lambda raw: raw["doe"].update(cells={})) == (
        "params.yaml: 'doe.cells' is empty: declare at least one design cell"
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_split_fraction_outside_open_unit_interval(fraction):
    assert message(lambda raw: raw["split"].update(val_fraction=fraction)) == (
        f"params.yaml: 'split.val_fraction' must be inside (0, 1), got {fraction}"
    )


def test_unknown_family():
    def change(raw):
        raw["doe"]["cells"] = {"r": {"family": "resnet", "layers": 2, "nodes": 10}}

    assert message(change) == "params.yaml: 'doe.cells.r.family' is 'resnet'; choose one of dense, cnn, lstm, logreg, mlp"


def test_unknown_optimizer():
    assert message(lambda raw: raw["train"].update(optimizer="adagrad")) == (
        "params.yaml: 'train.optimizer' is 'adagrad'; choose one of sgd, adam, rmsprop, nadam"
    )


def test_unknown_optimizer_in_a_cell_override():
    def change(raw):
        raw["doe"]["cells"] = {"d": {"family": "dense", "layers": 2, "nodes": 10, "optimizer": "adagrad"}}

    assert message(change) == (
        "params.yaml: 'doe.cells.d.optimizer' is 'adagrad'; choose one of sgd, adam, rmsprop, nadam"
    )


def test_data_files_come_in_pairs():
    assert message(lambda raw: raw["data"].update(train_csv="train.csv")) == (
        "params.yaml: set both 'data.train_csv' and 'data.test_csv', or neither (the embedded digits)"
    )


def test_unknown_duplicates_policy_and_min_class_rows():
    assert message(lambda raw: raw["validate"].update(duplicates="merge")) == (
        "params.yaml: 'validate.duplicates' is 'merge'; choose one of keep, drop, quarantine"
    )
    assert message(lambda raw: raw["validate"].update(min_class_rows=0)) == (
        "params.yaml: 'validate.min_class_rows' must be >= 1, got 0"
    )


def test_load_missing_file(tmp_path):
    with pytest.raises(ParamsError) as err:
        params.load(tmp_path / "params.yaml")
    assert str(err.value) == f"{tmp_path / 'params.yaml'}: not found (run from the project root)"
