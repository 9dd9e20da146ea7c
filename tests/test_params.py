import copy

import pytest
import yaml
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
        "params.yaml: unknown key 'trian' (known: augment, budget, data, doe, refit, report, split, train, validate)"
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


@pytest.mark.parametrize("rate", [float("inf"), float("-inf"), float("nan"), 0.0])
def test_learning_rate_must_be_finite_and_positive(rate):
    got = message(lambda raw: raw["train"].update(learning_rate=rate))
    assert got == f"params.yaml: 'train.learning_rate' must be a finite number > 0, got {rate}"

    def in_a_cell(raw):
        raw["doe"]["cells"] = {"d": {"family": "dense", "layers": 2, "nodes": 10, "learning_rate": rate}}

    assert message(in_a_cell).startswith("params.yaml: 'doe.cells.d.learning_rate' must be a finite number > 0")


def test_weight_penalties_must_be_finite():
    assert message(lambda raw: raw["train"].update(l2=float("inf"))) == (
        "params.yaml: 'train.l1' and 'train.l2' must be finite numbers >= 0, got 0.0, inf"
    )


@pytest.mark.parametrize(
    "name", ["x;touch /tmp/p", "$(touch p)", "a'b", "a b", "ok\n", "-x", ".x", "", "a/b", "dense\u00e9", "lr-0.01"]
)
def test_cell_names_that_a_shell_or_a_path_would_read_otherwise_are_refused(name):
    def change(raw):
        raw["doe"]["cells"] = {name: {"family": "dense", "layers": 2, "nodes": 10}}

    assert message(change) == (
        f"params.yaml: cell name {name!r} must start with a letter or digit and hold only "
        "letters, digits, '-' and '_'"
    )


def test_plain_cell_names_pass():
    names = ["dense-2x100", "cnn_1x8", "7", "A"]
    p = parse_with(lambda raw: raw["doe"].update(cells={n: {"family": "dense", "layers": 1, "nodes": 2} for n in names}))
    assert list(p.cells) == names


BOMB_LEVELS = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"&{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")
]


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path):
    # nine levels of nine aliases: 9**9 (387 million) strings once written out, in data.labels
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["data"]["labels"] = ["PLACEHOLDER"]
    text = yaml.safe_dump(raw, sort_keys=False).replace("- PLACEHOLDER", "[" + ", ".join(BOMB_LEVELS) + "]")
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("labels:\n  [", "labels: ["))
    with pytest.raises(ParamsError) as err:
        params.load(path)
    assert str(err.value) == f"{path}: expands to more than 100,000 values (YAML anchors and aliases written out)"


def test_a_self_referring_alias_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(DEFAULT_PARAMS, sort_keys=False).replace("labels: []", "labels: &l [1, *l]"))
    with pytest.raises(ParamsError) as err:
        params.load(path)
    assert str(err.value) == f"{path}: a YAML alias refers to a value that holds it"


def test_anchors_and_merge_keys_of_a_normal_size_still_load(tmp_path):
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump({k: v for k, v in DEFAULT_PARAMS.items() if k != "doe"}, sort_keys=False)
    text += "doe:\n  cells:\n    a: &dense {family: dense, layers: 2, nodes: 10}\n    b: {<<: *dense, nodes: 20}\n"
    path.write_text(text)
    cells = params.load(path).cells
    assert (cells["a"].nodes, cells["b"].nodes, cells["b"].layers) == (10, 20, 2)


def test_a_params_file_of_megabytes_is_refused_unread(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(DEFAULT_PARAMS, sort_keys=False) + "#" * (5 << 20) + "\n")
    with pytest.raises(ParamsError) as err:
        params.load(path)
    assert str(err.value) == f"{path}: larger than 4 MB; a params file is a few kB of knobs"


def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  epochs: 1\xff\n")
    with pytest.raises(ParamsError) as err:
        params.load(path)
    assert str(err.value) == f"{path}: not UTF-8 text (byte 18)"


REFIT_CELLS = {"dense-2x32": {"family": "dense", "layers": 2, "nodes": 32},
               "cnn-1x8": {"family": "cnn", "layers": 1, "nodes": 8}}


def with_refit(**refit_section) -> params.Params:
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["doe"]["cells"] = REFIT_CELLS
    raw["refit"] = refit_section
    return params.parse(raw)


def refit_refused(**refit_section) -> str:
    with pytest.raises(params.ParamsError) as err:
        with_refit(**refit_section)
    return str(err.value)


def test_the_refit_is_off_by_default_and_takes_best_or_a_cell():
    assert params.parse(copy.deepcopy(DEFAULT_PARAMS)).refit == params.RefitParams(cell="none", epochs="best")
    assert with_refit(cell="best").refit.cell == "best"
    assert with_refit(cell="cnn-1x8", epochs=12).refit == params.RefitParams(cell="cnn-1x8", epochs=12)


def test_a_bad_refit_key_is_one_line_naming_it():
    assert refit_refused(cell="cnn-2x8") == (
        "params.yaml: 'refit.cell' is 'cnn-2x8'; choose none (no refit), best (the best cell) or a cell of "
        "doe.cells (dense-2x32, cnn-1x8)"
    )
    assert refit_refused(cell=None).startswith("params.yaml: 'refit.cell' is ''; choose none")
    for epochs in (0, "last", True, 2.5, [3]):
        assert refit_refused(cell="best", epochs=epochs) == (
            "params.yaml: 'refit.epochs' must be best (the cell's best epoch) or a whole number of epochs >= 1, "
            f"got {epochs!r}"
        )
    assert refit_refused(cell="best", folds=3) == "params.yaml: unknown key 'refit.folds' (known: cell, epochs)"
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["doe"]["cells"] = {"refit": REFIT_CELLS["cnn-1x8"]}
    with pytest.raises(params.ParamsError, match=r"^params.yaml: cell name 'refit' is taken: models/refit/"):
        params.parse(raw)
