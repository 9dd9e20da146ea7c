"""Training the new keys on small real digits: the baselines' knobs, the optimizer knobs, the
summary and parameter count each trained cell writes."""

from __future__ import annotations

import numpy as np
import pytest
from test_train import cell, digits, stage_dir  # noqa: F401  (stage_dir: a fixture)

from mnist_doe import evaluate, train
from mnist_doe.common import files, params, paths, results

pytestmark = pytest.mark.slow


class Live:
    """What fit_baseline logs, per step."""

    def __init__(self):
        self.steps, self.row = [], {}

    def log_metric(self, name, value):
        self.row[name] = value

    def next_step(self):
        self.steps.append(self.row)
        self.row = {}

    def curve(self, name):
        return [step[name] for step in self.steps]


def data() -> dict:
    x, y = digits()
    return {"x_fit": x[:240], "y_fit": y[:240], "x_val": x[240:300], "y_val": y[240:300]}


def baseline(family: str, layers: int = 1, nodes=16, net: dict | None = None, **knobs) -> params.Cell:
    """A baseline cell as params.yaml would give it (knobs and its family's keys)."""
    knobs = {"epochs": 3, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003, **knobs}
    if isinstance(nodes, list):
        layers = len(nodes)
    raw = {"family": family, "layers": layers, "nodes": nodes, **(net or {})}
    t = params.TrainParams(**knobs)
    return params.Cell(name=family, family=family, layers=layers, nodes=nodes, train=t,
                       net=params.resolve_net(f"doe.cells.{family}", family, raw, t))


def test_the_mlp_with_sgd_trains_at_the_given_learning_rate():
    runs = {}
    for rate in (0.1, 0.001):
        live = Live()
        model, _, epochs, _ = train.fit_baseline(baseline("mlp", optimizer="sgd", learning_rate=rate, epochs=4), data(), live)
        assert (model.solver, model.learning_rate_init, epochs) == ("sgd", rate, 4)
        runs[rate] = live.curve("loss")
    # before, an mlp with optimizer sgd trained with adam at 0.001 whatever the rate said
    assert runs[0.1][-1] < 0.5 * runs[0.001][-1]
    assert runs[0.001][0] - runs[0.001][-1] < runs[0.1][0] - runs[0.1][-1]


def test_an_adam_mlp_is_the_one_it_was_before():
    """optimizer adam: MLPClassifier's defaults but for the rate, width and batch, as before."""
    from sklearn.neural_network import MLPClassifier

    d = data()
    model, predict, _, _ = train.fit_baseline(baseline("mlp", layers=2, nodes=16, epochs=2), d, Live())
    before = MLPClassifier(hidden_layer_sizes=(16, 16), learning_rate_init=0.003, batch_size=32, random_state=42)
    x = d["x_fit"].astype(np.float32) / 255
    for _ in range(2):
        before.partial_fit(x, d["y_fit"], classes=np.unique(d["y_fit"]))
    np.testing.assert_array_equal(predict(d["x_val"]), before.predict_proba(d["x_val"].astype(np.float32) / 255).astype(np.float32))


def test_the_mlp_takes_its_widths_schedule_penalty_and_momentum():
    c = baseline("mlp", nodes=[40, 30], net={"power_t": 0.05, "alpha": 0.01}, optimizer="sgd", learning_rate=0.05,
                 schedule="invscaling", momentum=0.5, nesterov=False, epochs=2)
    model, _, _, _ = train.fit_baseline(c, data(), Live())
    assert model.hidden_layer_sizes == (40, 30) and [w.shape for w in model.coefs_] == [(784, 40), (40, 30), (30, 10)]
    assert (model.learning_rate, model.power_t, model.alpha) == ("invscaling", 0.05, 0.01)
    assert (model.momentum, model.nesterovs_momentum) == (0.5, False)
    # invscaling: the rate falls with the samples seen
    assert model._optimizer.learning_rate < 0.05
    adam = train.mlp_options(baseline("mlp", beta_1=0.8, epsilon=1e-6))
    assert (adam["solver"], adam["beta_1"], adam["epsilon"]) == ("adam", 0.8, 1e-6) and "beta_2" not in adam


def test_the_mlp_stops_early_on_its_validation_loss_and_keeps_the_best_epoch():
    live = Live()
    c = baseline("mlp", nodes=64, optimizer="adam", learning_rate=0.02, epochs=40, patience=2)
    model, predict, epochs, _ = train.fit_baseline(c, data(), live)
    losses = live.curve("val_loss")
    assert epochs == len(losses) < 40  # 240 rows: it overfits, and stops
    best = int(np.argmin(losses))
    assert epochs == best + 1 + 2 and min(losses[best + 1:]) >= losses[best]
    d = data()
    # the weights kept are the best epoch's: its validation loss, computed again
    assert train._cross_entropy(model, d["x_val"].astype(np.float32) / 255, d["y_val"]) == pytest.approx(losses[best])


def test_logistic_regression_takes_c_and_solver_and_logs_its_losses():
    live = Live()
    model, _, epochs, _ = train.fit_baseline(baseline("logreg", net={"C": 0.1, "solver": "newton-cg"}), data(), live)
    assert (model.C, model.solver, epochs) == (0.1, "newton-cg", 1)
    assert set(live.steps[0]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert 0 < live.steps[0]["loss"] < live.steps[0]["val_loss"]


def test_a_keras_cell_writes_its_summary_and_parameter_count(stage_dir):
    import keras

    net = {"nodes": [4, 8], "pool_padding": "valid", "batch_norm": True, "batch_norm_position": "after",
           "block_dropout": 0.2, "head": 16, "head_dropout": 0.3, "input_scaling": "centred"}
    t = params.TrainParams(epochs=1, batch_size=32, optimizer="adam", learning_rate=0.003)
    c = params.Cell(name="cnn-bn", family="cnn", layers=2, nodes=(4, 8), train=t,
                    net=params.resolve_net("doe.cells.cnn-bn", "cnn", net, t))
    summary = train.train_cell(c)
    model = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True)
    text = (paths.MODELS_DIR / c.name / "summary.txt").read_text()
    assert f"Total params: {model.count_params():,}" in text
    assert "batch_normalization (BatchNormalization)" in text and "(None, 14, 14, 4)" in text
    written = files.read_json(paths.PREDICTIONS_DIR / f"{c.name}.json")
    assert written["param_count"] == summary["param_count"] == model.count_params()
    assert written["net"]["nodes"] == [4, 8] and written["nodes"] == [4, 8]
    truth = results.Truth(classes=[str(i) for i in range(10)], y_val=digits()[1][240:300],
                          y_test=-np.ones(50, int), test_labels_known=False)
    row = evaluate.cell_metrics(written, files.load_npz(paths.PREDICTIONS_DIR / f"{c.name}.npz"), truth)
    assert row["params"] == model.count_params()
    table = evaluate.markdown_table({"test_labels_known": False, "best_cell": c.name, "cells": {c.name: row}})
    head, _, line = table.splitlines()[:3]
    assert "| nodes | params |" in head and f"| {model.count_params():,} |" in line


def test_a_baseline_writes_its_summary_too(stage_dir):
    summary = train.train_cell(cell("mlp", layers=1, nodes=16, epochs=1))
    assert summary["param_count"] == 784 * 16 + 16 + 16 * 10 + 10
    assert (paths.MODELS_DIR / "mlp-1x16" / "summary.txt").read_text().endswith("Total params: 12,730\n")


def test_sgd_momentum_and_adam_betas_reach_the_saved_optimizer(stage_dir):
    import keras

    c = cell("dense", optimizer="sgd", learning_rate=0.01, momentum=0.9, nesterov=True)
    train.train_cell(c)
    saved = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True).optimizer
    assert (type(saved).__name__, saved.momentum, saved.nesterov) == ("SGD", 0.9, True)
    c = cell("cnn", optimizer="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-5)
    train.train_cell(c)
    saved = keras.saving.load_model(paths.MODELS_DIR / c.name / "model.keras", safe_mode=True).optimizer
    assert (saved.beta_1, saved.beta_2, saved.epsilon) == (0.8, 0.99, 1e-5)


def test_fused_updates_take_plain_sgd_and_any_adam_and_leave_momentum_to_keras():
    """loop.use_fused_updates: SGD with momentum keeps Keras' update; Adam's one-kernel update
    uses the optimizer's own beta_1, beta_2 and epsilon (same steps as Keras')."""
    import keras
    import tensorflow as tf

    from mnist_doe.engine.loop import use_fused_updates
    from mnist_doe.engine.models import optimizer

    assert use_fused_updates(optimizer("sgd", 0.01, momentum=0.9)) is False
    assert use_fused_updates(optimizer("sgd", 0.01)) is True
    weights = []
    for fused in (True, False):
        v = keras.Variable(np.linspace(-1, 1, 6, dtype=np.float32))
        opt = optimizer("adam", 0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3)
        if fused:
            assert use_fused_updates(opt) is True
        opt.build([v])
        for step in range(3):
            opt.apply_gradients([(tf.constant(np.cos(np.arange(6) + step), tf.float32), v)])
        weights.append(v.numpy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_an_activity_penalty_trains_in_the_fast_loop(stage_dir):
    t = params.TrainParams(epochs=1, batch_size=32, optimizer="adam", learning_rate=0.003)
    c = params.Cell(name="dense-act", family="dense", layers=1, nodes=16, train=t,
                    net=params.resolve_net("doe.cells.dense-act", "dense",
                                           {"layers": 1, "nodes": 16, "activity_l1": 1e-4}, t))
    summary = train.train_cell(c)
    assert summary["epochs"] == 1 and np.isfinite(summary["val_accuracy_mean"])


def test_an_activity_penalty_trains_with_engine_keras(stage_dir):
    """model.fit counts the penalty of each batch, on training and validation data alike."""
    t = params.TrainParams(epochs=2, batch_size=32, optimizer="adam", learning_rate=0.003, engine="keras")
    spec = {"layers": 1, "nodes": 16, "activity_l1": 1e-2}
    c = params.Cell(name="dense-act", family="dense", layers=1, nodes=16, train=t,
                    net=params.resolve_net("doe.cells.dense-act", "dense", spec, t))
    summary = train.train_cell(c)
    assert summary["epochs"] == 2 and summary["param_count"] == 784 * 16 + 16 + 170
