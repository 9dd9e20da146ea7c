"""A cell's network keys when params load: what they resolve to, and bad input refused in one
line naming the cell and the key, before any work (ParamsError; exit code 2)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import DEFAULT_PARAMS, write_params

from mnist_doe.common import params
from mnist_doe.common.params import ParamsError


def cells(text: str, train: dict | None = None) -> dict[str, params.Cell]:
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["train"] = {**raw["train"], **(train or {})}
    raw["doe"] = {"cells": yaml.safe_load(text)}
    return params.parse(raw).cells


def refused(text: str, train: dict | None = None) -> str:
    with pytest.raises(ParamsError) as err:
        cells(text, train)
    message = str(err.value)
    assert "\n" not in message
    return message.removeprefix("params.yaml: ")


def test_lists_of_widths_rates_and_flags_resolve_per_layer():
    c = cells("d: {family: dense, nodes: [64, 32], dropout: [0.5, 0], batch_norm: [true, false]}")["d"]
    assert (c.layers, c.nodes) == (2, (64, 32))
    assert (c.net.dropout, c.net.batch_norm) == ((0.5, 0.0), (True, False))
    assert c.train.dropout == 0.2  # the shared one: the per-layer list is the net's


def test_one_width_and_growth_give_the_filters_of_each_block():
    c = cells("c: {family: cnn, layers: 3, nodes: 32, filter_growth: 2}")["c"]
    assert (c.layers, c.nodes, c.net.nodes) == (3, 32, (32, 64, 128))
    assert (c.net.pooling, c.net.convs_per_block, c.net.block_dropout) == (("max",) * 3, (1,) * 3, (0.0,) * 3)
    assert (c.net.head, c.net.head_dropout, c.net.head_batch_norm) == ((128,), (0.2,), (False,))


def test_a_cnn_batch_norm_flag_is_every_block_and_the_head_a_list_is_per_block():
    every = cells("c: {family: cnn, layers: 2, nodes: 8, batch_norm: true}")["c"].net
    assert (every.batch_norm, every.head_batch_norm) == ((True, True), (True,))
    listed = cells("c: {family: cnn, nodes: [8, 8], batch_norm: [true, false]}")["c"].net
    assert (listed.batch_norm, listed.head_batch_norm) == ((True, False), (False,))


def test_a_simple_cell_keeps_its_integers_and_a_cell_made_in_code_gets_its_net():
    c = cells("d: {family: dense, layers: 5, nodes: 200}")["d"]
    assert (c.layers, c.nodes, c.net.nodes) == (5, 200, (200,) * 5)
    made = params.Cell(name="x", family="cnn", layers=2, nodes=8, train=params.TrainParams(batch_norm=True))
    assert made.net.nodes == (8, 8) and made.net.batch_norm == (True, True) and made.net.whole_batches


def test_optimizer_knobs_default_to_the_librarys_and_null_restores_it():
    c = cells("a: {family: dense, layers: 1, nodes: 4}\nb: {family: dense, layers: 1, nodes: 4, momentum: null}",
              train={"momentum": 0.9})
    assert c["a"].train.momentum == 0.9 and c["b"].train.momentum is None
    assert cells("a: {family: dense, layers: 1, nodes: 4}")["a"].train.beta_1 is None


def test_baseline_keys():
    c = cells("lr: {family: logreg, layers: 1, nodes: 1, C: 0.1, solver: newton-cg}\n"
              "m: {family: mlp, nodes: [400, 300], optimizer: sgd, schedule: invscaling, power_t: 0.05, alpha: 0.01}")
    assert (c["lr"].net.C, c["lr"].net.solver) == (0.1, "newton-cg")
    assert (c["m"].net.nodes, c["m"].net.power_t, c["m"].net.alpha, c["m"].train.schedule) == (
        (400, 300), 0.05, 0.01, "invscaling")


@pytest.mark.parametrize(("text", "message"), [
    # unknown keys, and keys of another family
    ("d: {family: dense, layers: 2, nodes: 8, widths: [3]}", "unknown key 'doe.cells.d.widths' (a cell takes family, layers, nodes"),
    ("d: {family: dense, layers: 2, nodes: 8, kernel_size: 5}", "'doe.cells.d.kernel_size' is a key of cnn cells; a dense cell does not take it"),
    ("d: {family: dense, layers: 2, nodes: 8, head: [64]}", "'doe.cells.d.head' is a key of cnn and lstm cells; a dense cell does not take it"),
    ("d: {family: lstm, layers: 2, nodes: 8, pooling: max}", "'doe.cells.d.pooling' is a key of cnn cells; a lstm cell does not take it"),
    ("d: {family: cnn, layers: 2, nodes: 8, C: 0.1}", "'doe.cells.d.C' is a key of logreg cells; a cnn cell does not take it"),
    ("d: {family: logreg, layers: 1, nodes: 1, alpha: 0.1}", "'doe.cells.d.alpha' is a key of mlp cells; a logreg cell does not take it"),
    ("d: {family: mlp, layers: 1, nodes: 9, activation: tanh}", "'doe.cells.d.activation' is a key of dense and cnn and lstm cells; a mlp cell does not take it"),
    ("d: {family: mlp, layers: 1, nodes: 9, dropout: 0.1}", "'doe.cells.d.dropout' does not apply to a mlp cell (a Keras knob)"),
    ("d: {family: logreg, layers: 1, nodes: 1, learning_rate: 0.1}", "'doe.cells.d.learning_rate' does not apply to a logreg cell (logreg takes epochs, seed, C, solver)"),
    ("d: {family: mlp, layers: 1, nodes: 9, rho: 0.9}", "'doe.cells.d.rho' does not apply to a mlp cell (a Keras knob)"),
    ("d: {family: mlp, layers: 1, nodes: 9, plateau_patience: 2}", "'doe.cells.d.plateau_patience' does not apply to a mlp cell (a Keras knob)"),
    ("d: {family: logreg, layers: 1, nodes: 1, monitor: val_accuracy}", "'doe.cells.d.monitor' does not apply to a logreg cell"),
    # lists that do not match the layers
    ("d: {family: dense, layers: 3, nodes: [8, 8]}", "'doe.cells.d.layers' is 3 but 'doe.cells.d.nodes' lists 2 widths"),
    ("d: {family: dense, nodes: [8, 8], dropout: [0.1]}", "'doe.cells.d.dropout' lists 1 value for 2 layers"),
    ("d: {family: dense, nodes: [8, 8], batch_norm: [true, false, true]}", "'doe.cells.d.batch_norm' lists 3 values for 2 layers"),
    ("d: {family: cnn, nodes: [8, 8], block_dropout: [0.1, 0.1, 0.1]}", "'doe.cells.d.block_dropout' lists 3 values for 2 blocks"),
    ("d: {family: cnn, nodes: [8, 8], pooling: [max]}", "'doe.cells.d.pooling' lists 1 value for 2 blocks"),
    ("d: {family: cnn, layers: 1, nodes: 8, head: [64, 32], head_dropout: [0.1]}", "'doe.cells.d.head_dropout' lists 1 value for 2 head layers"),
    ("d: {family: cnn, nodes: [8, 8], convs_per_block: [2]}", "'doe.cells.d.convs_per_block' lists 1 value for 2 blocks"),
    ("d: {family: cnn, nodes: [8, 16], filter_growth: 2}", "'doe.cells.d.filter_growth' grows one 'nodes' value; here 'nodes' is a list"),
    # maps shrunk below 1x1, naming the block
    ("d: {family: cnn, layers: 5, nodes: 8, pool_padding: valid}",
     "'doe.cells.d': block 5's 2x2 valid pooling shrinks its 1x1 map below 1x1 (images 28x28); use pool_padding same, pooling none or fewer blocks"),
    ("d: {family: cnn, layers: 3, nodes: 8, kernel_size: 7, padding: valid}",
     "'doe.cells.d': block 3's 7x7 valid convolution shrinks its 3x3 map below 1x1 (images 28x28); use padding same, a smaller kernel_size or fewer blocks"),
    ("d: {family: cnn, layers: 1, nodes: 8, kernel_size: 29, padding: valid}",
     "'doe.cells.d': block 1's 29x29 valid convolution shrinks its 28x28 map below 1x1 (images 28x28); use padding same, a smaller kernel_size or fewer blocks"),
    # rates outside [0, 1)
    ("d: {family: dense, nodes: [8, 8], dropout: [0.1, 1.0]}", "'doe.cells.d.dropout' must be a rate in [0, 1), got 1.0"),
    ("d: {family: cnn, layers: 2, nodes: 8, block_dropout: -0.1}", "'doe.cells.d.block_dropout' must be a rate in [0, 1), got -0.1"),
    ("d: {family: cnn, layers: 2, nodes: 8, head_dropout: 1}", "'doe.cells.d.head_dropout' must be a rate in [0, 1), got 1.0"),
    ("d: {family: dense, layers: 2, nodes: 8, dropout: 1.5}", "'doe.cells.d.dropout' must be in [0, 1), got 1.5"),
    # widths of zero or less
    ("d: {family: dense, nodes: [128, 0]}", "'doe.cells.d.nodes' holds 0; each width must be >= 1"),
    ("d: {family: dense, nodes: []}", "'doe.cells.d.nodes' is an empty list; give a width per layer"),
    ("d: {family: cnn, layers: 1, nodes: 8, head: [64, -1]}", "'doe.cells.d.head' must be >= 1, got -1"),
    ("d: {family: cnn, layers: 1, nodes: 0}", "'doe.cells.d.nodes' must be >= 1, got 0"),
    ("d: {family: cnn, layers: 1, nodes: 8, kernel_size: 0}", "'doe.cells.d.kernel_size' must be >= 1, got 0"),
    ("d: {family: mlp, nodes: [400, -3]}", "'doe.cells.d.nodes' holds -3; each width must be >= 1"),
    # a list where one value is meant, and values outside their choices
    ("d: {family: cnn, layers: 2, nodes: 8, dropout: [0.1, 0.1]}",
     "'doe.cells.d.dropout' is one rate here (a cnn's is its head's; per block: block_dropout; per head layer: head_dropout)"),
    ("d: {family: lstm, layers: 2, nodes: 8, batch_norm: [true, true]}",
     "'doe.cells.d.batch_norm' is one boolean for an lstm (its head's; per head layer: head_batch_norm)"),
    ("d: {family: dense, layers: 2, nodes: 8, activation: relu6}",
     "'doe.cells.d.activation' is 'relu6'; choose one of relu, elu, selu, gelu, swish, tanh, sigmoid, leaky_relu, linear"),
    ("d: {family: cnn, layers: 2, nodes: 8, pooling: [max, min]}", "'doe.cells.d.pooling' is 'min'; choose one of max, average, none"),
    ("d: {family: dense, layers: 2, nodes: 8, input_scaling: standard}", "'doe.cells.d.input_scaling' is 'standard'; choose one of unit, centred"),
    ("d: {family: dense, layers: 2, nodes: 8, activity_l1: -1}",
     "'doe.cells.d.activity_l1' and 'doe.cells.d.activity_l2' must be finite numbers >= 0, got -1.0, 0.0"),
    # optimizer knobs and the baselines' solvers and schedules
    ("d: {family: dense, layers: 2, nodes: 8, optimizer: adam, momentum: 0.9}",
     "'doe.cells.d.momentum' is a knob of sgd and rmsprop; the optimizer here is adam"),
    ("d: {family: dense, layers: 2, nodes: 8, beta_1: 0.8}", "'doe.cells.d.beta_1' is a knob of adam and nadam; the optimizer here is sgd"),
    ("d: {family: dense, layers: 2, nodes: 8, momentum: 1.0}", "'doe.cells.d.momentum' must be in [0, 1), got 1.0"),
    ("d: {family: dense, layers: 2, nodes: 8, nesterov: true, momentum: 0}", "'doe.cells.d.nesterov' needs momentum > 0, got momentum 0"),
    ("d: {family: dense, layers: 2, nodes: 8, optimizer: adam, epsilon: 0}", "'doe.cells.d.epsilon' must be a finite number > 0, got 0.0"),
    ("d: {family: mlp, layers: 1, nodes: 9, optimizer: rmsprop}", "'doe.cells.d.optimizer' is 'rmsprop'; an mlp's solver is one of sgd, adam"),
    ("d: {family: mlp, layers: 1, nodes: 9, schedule: step}", "'doe.cells.d.schedule' is 'step'; an mlp takes none or invscaling"),
    ("d: {family: mlp, layers: 1, nodes: 9, power_t: 0.1}", "'doe.cells.d.power_t' is the exponent of schedule invscaling; this cell's schedule is none"),
    ("d: {family: dense, layers: 2, nodes: 8, schedule: invscaling}", "'doe.cells.d.schedule' is 'invscaling', the mlp's; a dense cell takes one of "),
    ("d: {family: logreg, layers: 1, nodes: 1, solver: liblinear}",
     "'doe.cells.d.solver' is 'liblinear'; choose one of lbfgs, newton-cg, newton-cholesky, sag, saga"),
    ("d: {family: logreg, layers: 1, nodes: 1, C: 0}", "'doe.cells.d.C' must be a finite number > 0, got 0.0"),
])
def test_bad_network_keys_are_one_line_naming_the_cell_and_key(text, message):
    assert refused(text).startswith(message)


def test_an_optimizer_knob_of_the_train_section_must_fit_its_optimizer():
    raw = copy.deepcopy(DEFAULT_PARAMS)
    raw["train"]["beta_1"] = 0.5  # the shared optimizer is sgd
    with pytest.raises(ParamsError) as err:
        params.parse(raw)
    assert str(err.value) == "params.yaml: 'train.beta_1' is a knob of adam and nadam; the optimizer here is sgd"
    # a shared knob that a cell's own optimizer does not take is that cell's to leave unused
    c = cells("a: {family: dense, layers: 1, nodes: 4, optimizer: adam}", train={"momentum": 0.9})["a"]
    assert c.train.optimizer == "adam"


def test_the_image_side_is_checked_again_on_the_data(tmp_path):
    c = cells("c: {family: cnn, layers: 3, nodes: 8, pool_padding: valid}")["c"]  # 28 -> 14 -> 7 -> 3
    params.check_fits(c, 28)
    with pytest.raises(ParamsError) as err:
        params.check_fits(c, 6)  # 6 -> 3 -> 1 -> below 1
    assert "block 3's 2x2 valid pooling shrinks its 1x1 map below 1x1 (images 6x6)" in str(err.value)


def test_a_bad_network_key_stops_the_train_stage_with_exit_code_2(tmp_path):
    cells_ = {"c": {"family": "cnn", "layers": 2, "nodes": 8, "block_dropout": [0.1, 2.0]}}
    write_params(tmp_path, doe={"cells": cells_})
    done = subprocess.run([sys.executable, "-m", "mnist_doe.train", "--check"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "params.yaml: 'doe.cells.c.block_dropout' must be a rate in [0, 1), got 2.0")
