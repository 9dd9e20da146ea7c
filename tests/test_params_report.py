"""The keys that shape what the summary stages write: doe.ensemble and data.class_names."""

import copy

import pytest

from mnist_doe.common import params
from mnist_doe.common.params import ParamsError
from mnist_doe.common.results import class_names

from conftest import DEFAULT_PARAMS


def parsed(**sections):
    raw = copy.deepcopy(DEFAULT_PARAMS)
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return params.parse(raw)


def test_the_default_ensemble_is_the_best_three():
    assert parsed().ensemble == 3 and parsed(doe={"ensemble": 0}).ensemble == 0


@pytest.mark.parametrize("value", [1, -2, 2.5, "3", True])
def test_an_ensemble_is_none_or_two_cells_or_more(value):
    with pytest.raises(ParamsError, match=r"'doe\.ensemble' must be 0 \(none\) or a whole number"):
        parsed(doe={"ensemble": value})


def test_class_names_map_labels_to_names():
    p = parsed(data={"class_names": {0: "T-shirt/top", 1: "Trouser"}})
    assert class_names(["0", "1", "2"], p.data.class_names) == ["T-shirt/top", "Trouser", "2"]
    # numeric spellings of one label are one label
    assert class_names(["5"], {"05": "five"}) == ["five"]


@pytest.mark.parametrize(
    "names, message",
    [
        (["T-shirt"], r"'data\.class_names' must be a mapping"),
        ({0: ""}, r"'data\.class_names\.0' must be a non-empty name"),
        ({0: "same", 1: "same"}, r"gives the name 'same' to two labels"),
        ({True: "yes"}, r"has the key True"),
    ],
)
def test_bad_class_names_are_one_line(names, message):
    with pytest.raises(ParamsError, match=message):
        parsed(data={"class_names": names})


def test_a_name_for_a_label_the_data_lacks_is_said_and_not_used(capsys):
    assert class_names(["0", "1"], {7: "seven", 1: "one"}) == ["0", "one"]
    assert "data.class_names names 1 label the training data does not have (7)" in capsys.readouterr().out
